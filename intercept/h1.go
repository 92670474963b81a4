package intercept

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// This file reads and writes HTTP/1.x messages the way the reverse engine forwards them: a head
// is kept as the lines that arrived, so that what goes on is those lines (less the hop-by-hop
// fields), not a re-serialisation; a body is kept as its wire bytes, framing included, so that a
// chunked body leaves chunked, chunk for chunk.

// maxHeadBytes bounds a message head, as net/http's DefaultMaxHeaderBytes does.
const maxHeadBytes = 1 << 20

var (
	errHeadTooLarge = errors.New("message head larger than 1 MiB")
	errMalformed    = errors.New("malformed HTTP/1.x message")
)

// head is a parsed message head.
type head struct {
	// Start-line parts: method, target and proto of a request; proto, status and reason of a
	// response.
	start                 []byte // the start line as it came, line end included
	method, target, proto string
	status                int
	reason                string
	fields                []field
	header                http.Header // canonical keys, for lookups and the flow record
}

// field is one header field as it arrived.
type field struct {
	raw  []byte // the line(s) as sent, CRLF included
	name string // canonical
}

// readHead reads a head into buf (reused between messages) and parses it. isRequest selects the
// start line's grammar. Empty lines before a request line are skipped (RFC 9112 §2.2).
func readHead(r *bufio.Reader, buf []byte, isRequest bool) (*head, []byte, error) {
	buf = buf[:0]
	// Start and end (after LF) of each line in buf; room for a usual head without growing.
	var room [24][2]int
	lines := room[:0]
	for {
		start := len(buf)
		for {
			chunk, err := r.ReadSlice('\n')
			buf = append(buf, chunk...)
			if len(buf) > maxHeadBytes {
				return nil, buf, errHeadTooLarge
			}
			if err == nil {
				break
			}
			if err != bufio.ErrBufferFull {
				if err == io.EOF && len(buf) > 0 {
					err = io.ErrUnexpectedEOF
				}
				return nil, buf, err
			}
		}
		line := trimEOL(buf[start:])
		if len(line) == 0 {
			if len(lines) == 0 && isRequest {
				buf = buf[:start]
				continue
			}
			if len(lines) == 0 {
				return nil, buf, errMalformed
			}
			break
		}
		lines = append(lines, [2]int{start, len(buf)})
	}
	h := &head{header: make(http.Header, len(lines)-1), start: buf[lines[0][0]:lines[0][1]], fields: make([]field, 0, len(lines)-1)}
	// The head's strings (start-line parts, names that are already canonical, values) are all
	// cut from one copy of it rather than allocated one by one: a head is a dozen of them, kept
	// with the flow.
	text := string(buf)
	str := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		off := cap(buf) - cap(b) // b is a subslice of buf: slicing and trimming keep its end
		return text[off : off+len(b)]
	}
	if err := h.parseStart(trimEOL(buf[lines[0][0]:lines[0][1]]), isRequest, str); err != nil {
		return nil, buf, err
	}
	vals := make([]string, len(lines)-1)
	for i := 1; i < len(lines); i++ {
		raw := buf[lines[i][0]:lines[i][1]]
		line := trimEOL(raw)
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validFieldName(line[:colon]) {
			return nil, buf, fmt.Errorf("%w: header line %q", errMalformed, shortBytes(line))
		}
		name := textproto.CanonicalMIMEHeaderKey(str(line[:colon]))
		value := bytes.Trim(line[colon+1:], " \t")
		// obs-fold (RFC 9112 §5.2): continuation lines belong to this field. A request with
		// them must be refused; a response's are joined with spaces, once.
		end := i
		for end+1 < len(lines) && isFold(buf[lines[end+1][0]]) {
			end++
		}
		v := str(value)
		if end > i {
			if isRequest {
				return nil, buf, fmt.Errorf("%w: folded header line", errMalformed)
			}
			parts := [][]byte{value}
			for _, ln := range lines[i+1 : end+1] {
				parts = append(parts, bytes.Trim(trimEOL(buf[ln[0]:ln[1]]), " \t"))
			}
			v = string(bytes.Join(parts, []byte{' '}))
			raw = buf[lines[i][0]:lines[end][1]]
			i = end
		}
		if prev, ok := h.header[name]; ok {
			h.header[name] = append(prev, v)
		} else {
			// One backing array for the usual one value per field, not an allocation each.
			vals[0] = v
			h.header[name] = vals[:1:1]
			vals = vals[1:]
		}
		h.fields = append(h.fields, field{raw: raw, name: name})
	}
	return h, buf, nil
}

func (h *head) parseStart(line []byte, isRequest bool, str func([]byte) string) error {
	a, rest, ok1 := bytes.Cut(line, []byte{' '})
	b, c, ok2 := bytes.Cut(rest, []byte{' '})
	if isRequest {
		if !ok1 || !ok2 || len(a) == 0 || len(b) == 0 || !validFieldName(a) {
			return fmt.Errorf("%w: request line %q", errMalformed, shortBytes(line))
		}
		h.method, h.target, h.proto = str(a), str(b), str(c)
	} else {
		if !ok1 || len(b) != 3 {
			return fmt.Errorf("%w: status line %q", errMalformed, shortBytes(line))
		}
		st, err := strconv.Atoi(string(b))
		if err != nil || st < 100 || st > 999 {
			return fmt.Errorf("%w: status line %q", errMalformed, shortBytes(line))
		}
		h.proto, h.status, h.reason = str(a), st, str(c)
	}
	if h.proto != "HTTP/1.1" && h.proto != "HTTP/1.0" {
		return fmt.Errorf("%w: version %q", errUnsupportedVersion, shortBytes([]byte(h.proto)))
	}
	return nil
}

var errUnsupportedVersion = errors.New("unsupported HTTP version")

func isFold(c byte) bool { return c == ' ' || c == '\t' }

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}

func shortBytes(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

// validFieldName reports whether b is an RFC 9110 token.
func validFieldName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), c) >= 0 {
			return false
		}
	}
	return len(b) > 0
}

// hasToken reports whether a comma-separated header (Connection, Transfer-Encoding) lists tok.
func hasToken(h http.Header, name, tok string) bool {
	for _, v := range h[name] {
		for _, t := range bytes.Split([]byte(v), []byte{','}) {
			if bytes.EqualFold(bytes.TrimSpace(t), []byte(tok)) {
				return true
			}
		}
	}
	return false
}

// hop reports whether a field is hop-by-hop for this head: meaningful for one connection only
// (RFC 9110 §7.6.1), so not forwarded. Transfer-Encoding and Trailer are not in this list: the
// engine forwards a chunked body as it came, so its framing fields go with it.
func (h *head) hop(name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Upgrade":
		return true
	}
	return hasToken(h.header, "Connection", name)
}

// keepAlive reports whether the sender of h wants its connection kept open after this message.
func (h *head) keepAlive() bool {
	if h.proto == "HTTP/1.0" {
		return hasToken(h.header, "Connection", "keep-alive") && !hasToken(h.header, "Connection", "close")
	}
	return !hasToken(h.header, "Connection", "close")
}

// framing says how a body is delimited (RFC 9112 §6.3).
type framing struct {
	chunked bool
	length  int64 // with !chunked: the Content-Length, or -1 for a body that runs to the close
}

var noBody = framing{length: 0}

// requestFraming is the framing of a request body. A request whose length cannot be told
// reliably is refused, as the RFC requires; both Content-Length and Transfer-Encoding is refused
// too, since that is how requests are smuggled past proxies.
func (h *head) requestFraming() (framing, error) {
	if te := h.header["Transfer-Encoding"]; len(te) > 0 {
		if len(h.header["Content-Length"]) > 0 {
			return framing{}, fmt.Errorf("%w: both Content-Length and Transfer-Encoding", errMalformed)
		}
		if !lastCodingChunked(te) {
			return framing{}, fmt.Errorf("%w: Transfer-Encoding %q does not end in chunked", errMalformed, te)
		}
		return framing{chunked: true}, nil
	}
	n, ok, err := contentLength(h.header)
	if err != nil {
		return framing{}, err
	}
	if !ok {
		return noBody, nil
	}
	return framing{length: n}, nil
}

// responseFraming is the framing of a response body to a request with the given method.
func (h *head) responseFraming(method string) (framing, error) {
	if method == http.MethodHead || h.status < 200 || h.status == http.StatusNoContent || h.status == http.StatusNotModified {
		return noBody, nil
	}
	if te := h.header["Transfer-Encoding"]; len(te) > 0 {
		if lastCodingChunked(te) {
			return framing{chunked: true}, nil
		}
		return framing{length: -1}, nil
	}
	n, ok, err := contentLength(h.header)
	if err != nil {
		return framing{}, err
	}
	if !ok {
		return framing{length: -1}, nil
	}
	return framing{length: n}, nil
}

func lastCodingChunked(te []string) bool {
	last := te[len(te)-1]
	if i := bytes.LastIndexByte([]byte(last), ','); i >= 0 {
		last = last[i+1:]
	}
	return bytes.EqualFold(bytes.TrimSpace([]byte(last)), []byte("chunked"))
}

// contentLength parses Content-Length; repeated fields (or a list) must agree.
func contentLength(h http.Header) (int64, bool, error) {
	vs := h["Content-Length"]
	if len(vs) == 0 {
		return 0, false, nil
	}
	n := int64(-1)
	for _, v := range vs {
		// Cut rather than Split: this runs twice per exchange and should not allocate.
		for rest, more := v, true; more; {
			var part string
			part, rest, more = strings.Cut(rest, ",")
			p := strings.TrimSpace(part)
			m, err := strconv.ParseUint(p, 10, 63)
			if err != nil || len(p) == 0 || p[0] == '+' {
				return 0, false, fmt.Errorf("%w: Content-Length %q", errMalformed, v)
			}
			if n >= 0 && int64(m) != n {
				return 0, false, fmt.Errorf("%w: conflicting Content-Length values %q", errMalformed, vs)
			}
			n = int64(m)
		}
	}
	return n, true, nil
}

// body is what readBody read.
type body struct {
	wire      []byte // the bytes as they came, framing included; nil once streamed on
	data      []byte // the payload (dechunked), or its first max bytes when truncated
	size      int64  // payload size (known at the end even when truncated)
	truncated bool
}

// spillFunc is called once, when a body turns out larger than the capture limit, with the wire
// bytes read so far. It forwards them and returns where the rest of the wire bytes go.
type spillFunc func(wire []byte) (io.Writer, error)

// maxChunkLine bounds a chunk-size line (size and extensions) and a trailer line.
const maxChunkLine = 4096

// readBody reads one body framed as fr from r. While the body fits in max bytes it is buffered
// (wire and data); a larger one is handed to spill and streamed on, keeping only the first max
// bytes of its payload. A body that runs to the close (length -1) ends at EOF.
func readBody(r *bufio.Reader, fr framing, max int64, spill spillFunc) (body, error) {
	switch {
	case fr.chunked:
		return readChunked(r, max, spill)
	case fr.length == 0:
		return body{}, nil
	case fr.length > 0 && fr.length <= max:
		b := make([]byte, fr.length)
		n, err := io.ReadFull(r, b)
		if err != nil {
			return body{wire: b[:n], data: b[:n], size: int64(n)}, err
		}
		return body{wire: b, data: b, size: fr.length}, nil
	case fr.length > 0:
		b := make([]byte, max)
		if n, err := io.ReadFull(r, b); err != nil {
			return body{data: b[:n], size: int64(n), truncated: true}, err
		}
		out := body{data: b, size: fr.length, truncated: true}
		w, err := spill(b)
		if err != nil {
			return out, err
		}
		n, err := io.CopyN(w, r, fr.length-max)
		if err != nil {
			out.size = max + n
		}
		return out, err
	}
	// To the close: read up to max+1 bytes to learn whether it fits.
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return body{wire: b, data: b, size: int64(len(b))}, err
	}
	if int64(len(b)) <= max {
		return body{wire: b, data: b, size: int64(len(b))}, nil
	}
	out := body{data: b[:max], truncated: true}
	w, err := spill(b)
	if err != nil {
		out.size = int64(len(b))
		return out, err
	}
	n, err := io.Copy(w, r)
	out.size = int64(len(b)) + n
	return out, err
}

// readChunked reads a chunked body (RFC 9112 §7.1), trailer section included.
func readChunked(r *bufio.Reader, max int64, spill spillFunc) (body, error) {
	var out body
	var sink io.Writer // set once spilled
	emit := func(b []byte) error {
		if sink != nil {
			_, err := sink.Write(b)
			return err
		}
		out.wire = append(out.wire, b...)
		if int64(len(out.wire)) > max {
			out.truncated = true
			w, err := spill(out.wire)
			if err != nil {
				return err
			}
			sink, out.wire = w, nil
		}
		return nil
	}
	keep := func(b []byte) {
		if room := max - int64(len(out.data)); room > 0 {
			out.data = append(out.data, b[:min(int64(len(b)), room)]...)
		}
		if int64(len(out.data)) < out.size+int64(len(b)) {
			out.truncated = true
		}
		out.size += int64(len(b))
	}
	var buf []byte
	for {
		line, err := readLine(r, maxChunkLine)
		if err != nil {
			return out, err
		}
		if err := emit(line); err != nil {
			return out, err
		}
		sz := trimEOL(line)
		if i := bytes.IndexByte(sz, ';'); i >= 0 {
			sz = sz[:i]
		}
		n, perr := strconv.ParseUint(string(bytes.TrimRight(sz, " \t")), 16, 62)
		if perr != nil || len(sz) == 0 {
			return out, fmt.Errorf("%w: chunk size line %q", errMalformed, shortBytes(line))
		}
		if n == 0 {
			break
		}
		for n > 0 {
			step := min(n, 32<<10)
			if cap(buf) < int(step) {
				buf = make([]byte, step)
			}
			b := buf[:step]
			if _, err := io.ReadFull(r, b); err != nil {
				return out, err
			}
			keep(b)
			if err := emit(b); err != nil {
				return out, err
			}
			n -= step
		}
		crlf, err := readLine(r, 2)
		if err != nil {
			return out, err
		}
		if len(trimEOL(crlf)) != 0 {
			return out, fmt.Errorf("%w: chunk data not followed by CRLF", errMalformed)
		}
		if err := emit(crlf); err != nil {
			return out, err
		}
	}
	// Trailer section: field lines up to an empty line.
	for trailerBytes := 0; ; {
		line, err := readLine(r, maxChunkLine)
		if err != nil {
			return out, err
		}
		if err := emit(line); err != nil {
			return out, err
		}
		if len(trimEOL(line)) == 0 {
			return out, nil
		}
		if trailerBytes += len(line); trailerBytes > maxHeadBytes {
			return out, errHeadTooLarge
		}
	}
}

// readLine reads one LF-terminated line of at most max bytes (the terminator excluded) and
// returns a copy of it, terminator included.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(trimEOL(line)) > max {
			return line, fmt.Errorf("%w: line longer than %d bytes", errMalformed, max)
		}
		if err == nil {
			return line, nil
		}
		if err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return line, err
		}
	}
}
