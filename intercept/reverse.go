package intercept

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/roapproxy/roapproxy/captures"
)

// Reverse is a reverse listener's engine: every request on a connection it accepts goes to one
// upstream, through the pipeline.
//
// It speaks HTTP/1.x itself rather than through net/http. One goroutine per client connection
// reads a request, writes it to a pooled upstream connection, reads the answer and writes it
// back, with no hand-offs between goroutines on the way: at concurrency 1 each hand-off is a
// thread wake-up that costs more than the forwarding itself. And what it forwards is the lines
// and bytes that came, less the hop-by-hop fields: header order and case, chunk boundaries and
// Content-Length framing pass as they are, which a debugging proxy owes the peers it sits
// between.
type Reverse struct {
	p      *Pipeline
	target *url.URL
	o      ReverseOptions
	up     *upstreamPool

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*revConn]struct{}
	shutdown  atomic.Bool
}

// ReverseOptions tune a reverse listener. Zero values take the defaults.
type ReverseOptions struct {
	TLS               *TLSOptions   // for an https:// upstream
	DialTimeout       time.Duration // default 10 s
	ResponseTimeout   time.Duration // from sending the request to the response head; default 60 s
	ReadHeaderTimeout time.Duration // for a client's request head; default 30 s
	IdleTimeout       time.Duration // a keep-alive client connection with no request; default 120 s
	ClientTimeout     time.Duration // reading a request body, writing a response; default 60 s
	MaxIdleUpstream   int           // idle upstream connections kept; default 64
	// IdleUpstream is how long an idle upstream connection is reused. Shorter than the
	// keep-alive timeout of common servers, so a connection is rarely found closed. Default 30 s.
	IdleUpstream time.Duration
}

func (o *ReverseOptions) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.DialTimeout, 10*time.Second)
	def(&o.ResponseTimeout, 60*time.Second)
	def(&o.ReadHeaderTimeout, 30*time.Second)
	def(&o.IdleTimeout, 120*time.Second)
	def(&o.ClientTimeout, 60*time.Second)
	def(&o.IdleUpstream, 30*time.Second)
	if o.MaxIdleUpstream <= 0 {
		o.MaxIdleUpstream = 64
	}
}

// NewReverse returns the engine of a reverse listener in front of target (http or https).
func NewReverse(p *Pipeline, target *url.URL, o ReverseOptions) *Reverse {
	o.defaults()
	return &Reverse{p: p, target: target, o: o, up: newUpstreamPool(target, o),
		listeners: map[net.Listener]struct{}{}, conns: map[*revConn]struct{}{}}
}

// revConn is one client connection; idle while it waits for a request.
type revConn struct {
	c    net.Conn
	idle atomic.Bool
}

// Serve accepts connections on l until Shutdown or Close; it then returns http.ErrServerClosed.
func (s *Reverse) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like pass; wait a little, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		rc := &revConn{c: c}
		s.mu.Lock()
		if s.shutdown.Load() {
			s.mu.Unlock()
			c.Close()
			return http.ErrServerClosed
		}
		s.conns[rc] = struct{}{}
		s.mu.Unlock()
		go s.serveConn(rc)
	}
}

// Shutdown stops accepting, closes idle connections, and waits for the exchanges in progress
// until ctx is done; then it closes what is left.
func (s *Reverse) Shutdown(ctx context.Context) error {
	s.stopListening()
	defer s.up.close()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if s.closeConns(true) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			s.closeConns(false)
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Reverse) Close() error {
	s.stopListening()
	s.closeConns(false)
	s.up.close()
	return nil
}

// busy returns how many client connections are inside an exchange.
func (s *Reverse) busy() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for rc := range s.conns {
		if !rc.idle.Load() {
			n++
		}
	}
	return n
}

func (s *Reverse) stopListening() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdown.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	clear(s.listeners)
}

// closeConns closes the idle client connections (all of them unless idleOnly) and returns how
// many are left open.
func (s *Reverse) closeConns(idleOnly bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	left := 0
	for rc := range s.conns {
		if !idleOnly || rc.idle.Load() {
			rc.c.Close()
		} else {
			left++
		}
	}
	return left
}

func (s *Reverse) serveConn(rc *revConn) {
	defer func() {
		rc.c.Close()
		s.mu.Lock()
		delete(s.conns, rc)
		s.mu.Unlock()
	}()
	c := rc.c
	br := bufio.NewReaderSize(c, 16<<10)
	var reqBuf, respBuf []byte
	wait := s.o.ReadHeaderTimeout
	for {
		rc.idle.Store(true)
		if s.shutdown.Load() {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		if _, err := br.Peek(1); err != nil {
			return
		}
		rc.idle.Store(false)
		_ = c.SetReadDeadline(time.Now().Add(s.o.ReadHeaderTimeout))
		h, buf, err := readHead(br, reqBuf, true)
		reqBuf = buf
		if err != nil {
			s.refuse(c, err)
			return
		}
		if !s.exchange(rc, br, h, &respBuf) {
			return
		}
		wait = s.o.IdleTimeout
	}
}

// refuse answers a request that cannot be forwarded, and the connection is closed after it.
func (s *Reverse) refuse(c net.Conn, err error) {
	status := http.StatusBadRequest
	switch {
	case errors.Is(err, errHeadTooLarge):
		status = http.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, errUnsupportedVersion):
		status = http.StatusHTTPVersionNotSupported
	case errors.Is(err, errMethodNotAllowed):
		status = http.StatusMethodNotAllowed
	case !errors.Is(err, errMalformed):
		return // the client went away or timed out: nobody to answer
	}
	msg := "roapproxy: " + err.Error() + "\n"
	_ = c.SetWriteDeadline(time.Now().Add(s.o.ClientTimeout))
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\nX-Roapproxy-Error: request\r\n\r\n%s",
		status, http.StatusText(status), len(msg), msg)
	// Closing with unread request bytes in the socket would reset the connection, and the
	// client could lose the answer: half-close, then drain for a moment.
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.CopyN(io.Discard, c, 4<<20)
	}
}

var errMethodNotAllowed = errors.New("a reverse listener does not tunnel: CONNECT is for the forward proxy")

// tagWriter remembers the first error of the writer it wraps, so a failed stream can be blamed
// on the side that failed. A body streamed through it may take longer than any one timeout
// allows: before each write it calls idle, which pushes the client's deadline on, so that a
// timeout bounds a stalled client rather than a long body.
type tagWriter struct {
	w    io.Writer
	idle func()
	err  error
}

func (t *tagWriter) Write(b []byte) (int, error) {
	if t.idle != nil {
		t.idle()
	}
	n, err := t.w.Write(b)
	if err != nil && t.err == nil {
		t.err = err
	}
	return n, err
}

// exchange forwards one request whose head has been read, and reports whether the client
// connection stays open for the next one.
func (s *Reverse) exchange(rc *revConn, br *bufio.Reader, h *head, respBuf *[]byte) bool {
	c := rc.c
	if h.method == http.MethodConnect {
		s.refuse(c, errMethodNotAllowed)
		return false
	}
	fr, err := h.requestFraming()
	if err != nil {
		s.refuse(c, err)
		return false
	}
	p := s.p
	f := &captures.Flow{Mode: "reverse", Client: c.RemoteAddr().String(), Method: h.method,
		URL: s.clientURL(h, c), Proto: h.proto, Upstream: s.target.Host, Request: captures.Half{Header: h.header}}
	x := p.begin(f)
	start := time.Now()
	var deadline time.Time // of the whole upstream exchange
	if p.cfg.Timeout > 0 {
		deadline = start.Add(p.cfg.Timeout)
	}
	expect100 := h.proto == "HTTP/1.1" && hasToken(h.header, "Expect", "100-continue")
	if expect100 && fr != noBody {
		// The client waits for this before it sends the body; the upstream's own 100 is
		// dropped below. This is what net/http did for the proxy before.
		_ = c.SetWriteDeadline(time.Now().Add(s.o.ClientTimeout))
		if _, err := io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
			x.request(nil, 0, false, "", err)
			x.done()
			return false
		}
	}
	out := s.requestHead(h)
	ct := h.header.Get("Content-Type")

	// The request body: buffered when it fits the capture limit, else streamed on as it comes.
	var up *upConn
	var upw *tagWriter
	spill := func(wire []byte) (io.Writer, error) {
		x.sending()
		var err error
		if up, err = s.up.get(context.Background()); err != nil {
			return nil, err
		}
		setDeadline(up.c, deadline)
		upw = &tagWriter{w: up.c, idle: func() { _ = c.SetReadDeadline(time.Now().Add(s.o.ClientTimeout)) }}
		bufs := net.Buffers{out, wire}
		if _, err := bufs.WriteTo(upw); err != nil {
			return nil, err
		}
		return upw, nil
	}
	_ = c.SetReadDeadline(time.Now().Add(s.o.ClientTimeout))
	b, err := readBody(br, fr, p.cfg.MaxBody, spill)
	streamed := b.truncated
	if err != nil {
		upstreamFault := streamed && (up == nil || upw.err != nil)
		if !upstreamFault {
			// The client did not send its whole body: record what came and do not forward
			// the rest of a message the upstream would reject or, worse, misread.
			x.request(b.data, b.size, streamed, ct, err)
			if up != nil {
				up.c.Close()
			}
			x.done()
			return false
		}
		x.request(b.data, b.size, true, ct, nil)
		if up != nil {
			up.c.Close()
		}
		s.writeFailure(c, x.fail(err))
		x.done()
		return false
	}
	x.request(b.data, b.size, streamed, ct, nil)

	if !streamed {
		x.sending()
		up, err = s.send(out, b.wire, deadline)
		if err != nil {
			s.writeFailure(c, x.fail(err))
			x.done()
			return false
		}
	}

	// The response head, past interim 1xx responses.
	var rh *head
	for {
		headDeadline := time.Now().Add(s.o.ResponseTimeout)
		if !deadline.IsZero() && deadline.Before(headDeadline) {
			headDeadline = deadline
		}
		_ = up.c.SetReadDeadline(headDeadline)
		rh, *respBuf, err = readHead(up.r, *respBuf, false)
		if err != nil && !streamed && retryable(up, *respBuf, err) {
			// A kept-alive connection the upstream had closed before our request reached it:
			// nothing was processed, so the request goes again on a fresh connection.
			up.c.Close()
			if up, err = s.send(out, b.wire, deadline); err != nil {
				s.writeFailure(c, x.fail(err))
				x.done()
				return false
			}
			continue
		}
		if err != nil {
			up.c.Close()
			s.writeFailure(c, x.fail(fmt.Errorf("reading the response head: %w", err)))
			x.done()
			return false
		}
		if rh.status >= 200 {
			break
		}
		if rh.status == http.StatusSwitchingProtocols {
			up.c.Close()
			s.writeFailure(c, x.fail(errors.New("the upstream switched protocols, which a reverse listener does not relay")))
			x.done()
			return false
		}
		if rh.status == http.StatusContinue && (expect100 || !hasToken(h.header, "Expect", "100-continue")) {
			continue
		}
		// Other interim responses (103 Early Hints) go to the client as they came.
		_ = c.SetWriteDeadline(time.Now().Add(s.o.ClientTimeout))
		if _, err := c.Write(*respBuf); err != nil {
			up.c.Close()
			x.done()
			return false
		}
	}
	x.answered(rh.status, rh.header)
	rfr, err := rh.responseFraming(h.method)
	if err != nil {
		up.c.Close()
		s.writeFailure(c, x.fail(err))
		x.done()
		return false
	}
	keepClient := h.keepAlive() && (rfr.chunked || rfr.length >= 0)
	outResp := responseHead(rh, h, keepClient)

	// The response body, buffered or streamed like the request's.
	cw := &tagWriter{w: c, idle: func() { _ = c.SetWriteDeadline(time.Now().Add(s.o.ClientTimeout)) }}
	spillResp := func(wire []byte) (io.Writer, error) {
		_ = c.SetWriteDeadline(time.Now().Add(s.o.ClientTimeout))
		bufs := net.Buffers{outResp, wire}
		if _, err := bufs.WriteTo(cw); err != nil {
			return nil, err
		}
		return cw, nil
	}
	setDeadline(up.c, deadline)
	rb, err := readBody(up.r, rfr, p.cfg.MaxBody, spillResp)
	reuse := err == nil && rh.keepAlive() && (rfr.chunked || rfr.length >= 0) && h.proto == "HTTP/1.1"
	if reuse {
		s.up.put(up)
	} else {
		up.c.Close()
	}
	switch {
	case err != nil && !rb.truncated && cw.err == nil:
		// Nothing reached the client yet: it gets a 502 that says what happened.
		s.writeFailure(c, x.fail(fmt.Errorf("reading the response body: %w", err)))
		x.done()
		return false
	case err != nil:
		if cw.err == nil {
			x.cut(err)
		}
		x.response(rb.data, rb.size, true)
		x.done()
		return false
	case rb.truncated:
		x.response(rb.data, rb.size, true)
		x.done()
		return keepClient
	}
	x.response(rb.data, rb.size, false)
	_ = c.SetWriteDeadline(time.Now().Add(s.o.ClientTimeout))
	bufs := net.Buffers{outResp, rb.wire}
	_, err = bufs.WriteTo(c)
	x.done()
	return err == nil && keepClient
}

// send writes a buffered request on an upstream connection. A kept-alive connection that
// fails the write was closed by the upstream while idle; the request goes once more on a
// fresh one.
func (s *Reverse) send(out, body []byte, deadline time.Time) (*upConn, error) {
	for {
		up, err := s.up.get(context.Background())
		if err != nil {
			return nil, err
		}
		setDeadline(up.c, deadline)
		bufs := net.Buffers{out, body}
		if _, err = bufs.WriteTo(up.c); err == nil {
			return up, nil
		}
		up.c.Close()
		if !up.reused {
			return nil, err
		}
	}
}

// retryable reports whether a response-head read error means the upstream had closed a
// kept-alive connection before it read the request: nothing at all came back.
func retryable(up *upConn, got []byte, err error) bool {
	if err == nil || !up.reused || len(got) > 0 {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func setDeadline(c net.Conn, t time.Time) { _ = c.SetDeadline(t) }

// cut records an upstream that failed after part of its response had gone to the client; the
// client's connection is closed, which is all that tells it.
func (x *exchange) cut(err error) {
	x.r.err = fmt.Sprintf("roapproxy: upstream %s failed mid-response: %v", x.f.Upstream, err)
	x.r.findings = append(x.r.findings, RuleUpstream.At("", "%s; the client's connection was closed", strings.TrimPrefix(x.r.err, "roapproxy: ")))
}

func (s *Reverse) writeFailure(c net.Conn, u upstreamFailure) {
	_ = c.SetWriteDeadline(time.Now().Add(s.o.ClientTimeout))
	b := []byte("HTTP/1.1 502 Bad Gateway\r\n")
	for _, k := range []string{"Content-Type", "Content-Length", "X-Roapproxy-Error"} {
		b = append(b, k...)
		b = append(b, ": "...)
		b = append(b, u.header.Get(k)...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Connection: close\r\n\r\n"...)
	bufs := net.Buffers{b, u.body}
	_, _ = bufs.WriteTo(c)
}

// clientURL is the URL the client addressed: the one a trigger's roapURL names.
func (s *Reverse) clientURL(h *head, c net.Conn) string {
	if strings.HasPrefix(h.target, "http://") || strings.HasPrefix(h.target, "https://") {
		return h.target
	}
	host := h.header.Get("Host")
	if host == "" {
		host = c.LocalAddr().String()
	}
	return "http://" + host + h.target
}

// upstreamTarget is the request-target sent upstream: the client's path and query, joined to
// the target URL's path and query, as they came (no decoding and re-encoding).
func (s *Reverse) upstreamTarget(t string) string {
	if strings.HasPrefix(t, "http://") || strings.HasPrefix(t, "https://") {
		rest := t[strings.Index(t, "//")+2:]
		if i := strings.IndexAny(rest, "/?"); i >= 0 {
			t = rest[i:]
		} else {
			t = "/"
		}
	}
	if t == "*" {
		return t
	}
	path, query, hasQuery := strings.Cut(t, "?")
	if base := s.target.EscapedPath(); base != "" && base != "/" {
		path = singleJoin(base, path)
	}
	switch {
	case s.target.RawQuery != "" && hasQuery && query != "":
		return path + "?" + s.target.RawQuery + "&" + query
	case s.target.RawQuery != "":
		return path + "?" + s.target.RawQuery
	case hasQuery:
		return path + "?" + query
	}
	return path
}

// requestHead is the head sent upstream: the request line with the upstream's target, the
// client's fields as they came less the hop-by-hop ones, and Host naming the upstream.
func (s *Reverse) requestHead(h *head) []byte {
	n := 64 + len(h.target) + len(s.target.Host)
	for _, f := range h.fields {
		n += len(f.raw)
	}
	b := make([]byte, 0, n)
	b = append(b, h.method...)
	b = append(b, ' ')
	b = append(b, s.upstreamTarget(h.target)...)
	b = append(b, ' ')
	b = append(b, h.proto...)
	b = append(b, "\r\n"...)
	host := false
	for _, f := range h.fields {
		switch {
		case f.name == "Host":
			if !host {
				b = append(b, "Host: "...)
				b = append(b, s.target.Host...)
				b = append(b, "\r\n"...)
				host = true
			}
		case !h.hop(f.name):
			b = append(b, f.raw...)
		}
	}
	if !host {
		b = append(b, "Host: "...)
		b = append(b, s.target.Host...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// responseHead is the head sent to the client: the upstream's status line and fields as they
// came less the hop-by-hop ones, and what the client connection does next.
func responseHead(rh, req *head, keepClient bool) []byte {
	n := 64 + len(rh.start)
	for _, f := range rh.fields {
		n += len(f.raw)
	}
	b := make([]byte, 0, n)
	b = append(b, rh.start...)
	for _, f := range rh.fields {
		if !rh.hop(f.name) {
			b = append(b, f.raw...)
		}
	}
	switch {
	case !keepClient && req.proto == "HTTP/1.1":
		b = append(b, "Connection: close\r\n"...)
	case keepClient && req.proto == "HTTP/1.0":
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	return append(b, "\r\n"...)
}
