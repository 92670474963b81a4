package intercept

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
)

// rawUpstream is an upstream that speaks raw bytes: serve gets each accepted connection. It
// returns the upstream's URL.
func rawUpstream(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) *url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	u, _ := url.Parse("http://" + l.Addr().String())
	return u
}

// readRawRequest reads one request's head and Content-Length body from br as raw bytes.
func readRawRequest(br *bufio.Reader) (headBytes, body []byte, err error) {
	var h bytes.Buffer
	n := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return h.Bytes(), nil, err
		}
		h.WriteString(line)
		if line == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
			fmt.Sscan(strings.TrimSpace(v), &n)
		}
	}
	body = make([]byte, n)
	_, err = io.ReadFull(br, body)
	return h.Bytes(), body, err
}

// dialRaw opens a client connection to a reverse listener.
func dialRaw(t *testing.T, rev *revServer) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", rev.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// readUntilClose reads everything the proxy sends until it closes the connection.
func readUntilClose(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	b, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading until close: %v (got %q)", err, b)
	}
	return string(b)
}

func flowByID(t *testing.T, s *captures.Store, i int) *captures.Flow {
	t.Helper()
	waitFlows(t, s, i+1)
	f, _ := s.Get(s.Snapshot()[i].ID)
	return f
}

func TestReverseForwardsTheHeadAsItCameLessHopByHop(t *testing.T) {
	got := make(chan string, 1)
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		h, _, err := readRawRequest(br)
		if err != nil {
			return
		}
		got <- string(h)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nx-lower: kept\r\nConnection: keep-alive, X-Hop\r\nX-Hop: dropped\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok")
	})
	p, _ := newTestPipeline(t, nil)
	up.Path = "/ri"
	up.RawQuery = "tenant=a"
	rev := startReverse(t, p, up)
	c, br := dialRaw(t, rev)
	io.WriteString(c, "POST /roap%2Fx?id=1 HTTP/1.1\r\nx-device: Phone-1\r\nHost: ri.example\r\nConnection: X-Trace\r\nX-Trace: hop\r\nUser-Agent: agent/1\r\nContent-Length: 4\r\n\r\nbody")
	want := "POST /ri/roap%2Fx?tenant=a&id=1 HTTP/1.1\r\nx-device: Phone-1\r\nHost: " + up.Host + "\r\nUser-Agent: agent/1\r\nContent-Length: 4\r\n\r\n"
	if h := <-got; h != want {
		t.Fatalf("upstream got head\n%q\nwant\n%q", h, want)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("x-lower") != "kept" || resp.Header.Get("X-Hop") != "" || resp.Header.Get("Keep-Alive") != "" || resp.Header.Get("Connection") != "" {
		t.Fatalf("response head: %v", resp.Header)
	}
}

func TestReverseChunkedBodiesPassChunkForChunk(t *testing.T) {
	reqChunks := "5\r\n<roap\r\n" + fmt.Sprintf("%x", len(ldResp)-5) + "\r\n" + ldResp[5:] + "\r\n0\r\n\r\n"
	// The request above spells ldResp in two chunks; the answer spells it in three, with a
	// chunk extension and a trailer.
	respChunks := "3\r\n<ro\r\n4;ext=1\r\nap:l\r\n" + fmt.Sprintf("%x", len(ldResp)-7) + "\r\n" + ldResp[7:] + "\r\n0\r\nX-Checksum: 1\r\n\r\n"
	gotBody := make(chan string, 1)
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		var h bytes.Buffer
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			h.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		b := make([]byte, len(reqChunks))
		io.ReadFull(br, b)
		gotBody <- string(b)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: "+decode.MIMEPDU+"\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n"+respChunks)
	})
	p, store := newTestPipeline(t, nil)
	rev := startReverse(t, p, up)
	c, br := dialRaw(t, rev)
	io.WriteString(c, "POST /roap HTTP/1.1\r\nHost: x\r\nContent-Type: "+decode.MIMEPDU+"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+reqChunks)
	if b := <-gotBody; b != reqChunks {
		t.Fatalf("upstream got body %q, want the chunks as sent %q", b, reqChunks)
	}
	all := readUntilClose(t, br)
	_, wire, _ := strings.Cut(all, "\r\n\r\n")
	if wire != respChunks {
		t.Fatalf("client got body %q, want the chunks as sent %q", wire, respChunks)
	}
	if !strings.Contains(all, "Transfer-Encoding: chunked\r\n") || !strings.Contains(all, "Connection: close\r\n") {
		t.Fatalf("response head: %q", all)
	}
	f := flowByID(t, store, 0)
	if string(f.Request.Body) != ldResp || string(f.Response.Body) != ldResp {
		t.Fatalf("captured bodies are not the dechunked payloads: %q / %q", f.Request.Body, f.Response.Body)
	}
	if f.Response.Message == nil || f.Response.Message.Kind != "leaveDomainResponse" || f.Request.Size != int64(len(ldResp)) {
		t.Fatalf("chunked response not decoded: %+v", f.Response.Message)
	}
}

func TestReverseKeepsClientConnectionsAliveAndPipelines(t *testing.T) {
	var conns atomic.Int64
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		conns.Add(1)
		for {
			h, _, err := readRawRequest(br)
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(string(h), "HEAD "):
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
			case strings.HasPrefix(string(h), "GET /empty"):
				io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
			default:
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
			}
		}
	})
	p, store := newTestPipeline(t, nil)
	rev := startReverse(t, p, up)
	c, br := dialRaw(t, rev)
	// Three requests in one write: answers must come in order on the same connection.
	io.WriteString(c, "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /empty HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	for i, want := range []struct {
		method string
		status int
		body   string
	}{{"HEAD", 200, ""}, {"GET", 204, ""}, {"GET", 200, "hello"}} {
		resp, err := http.ReadResponse(br, &http.Request{Method: want.method})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want.status || string(b) != want.body {
			t.Fatalf("response %d: %d %q", i, resp.StatusCode, b)
		}
	}
	waitFlows(t, store, 3)
	if n := conns.Load(); n != 1 {
		t.Fatalf("upstream saw %d connections for three keep-alive exchanges, want 1", n)
	}
}

func TestReverseRetriesAConnectionTheUpstreamClosedWhileIdle(t *testing.T) {
	var served atomic.Int64
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		// One exchange per connection, then a silent close, as a server whose keep-alive
		// timeout ran out does.
		if _, _, err := readRawRequest(br); err != nil {
			return
		}
		served.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	p, store := newTestPipeline(t, nil)
	rev := startReverse(t, p, up)
	for i := range 5 {
		resp, err := http.Post(rev.URL+"/roap", decode.MIMEPDU, strings.NewReader(ldResp))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
		time.Sleep(20 * time.Millisecond) // let the close reach the pooled connection
	}
	if served.Load() != 5 {
		t.Fatalf("upstream served %d requests, want 5: a retried request went twice or never", served.Load())
	}
	waitFlows(t, store, 5)
	for _, f := range store.Snapshot() {
		if f.Error != "" || len(f.Findings) > 0 {
			t.Fatalf("flow %d: %s %v", f.ID, f.Error, f.Findings)
		}
	}
}

func TestReverseAnswersExpectContinue(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		_, body, err := readRawRequest(br)
		if err != nil {
			return
		}
		// A server that honours Expect sends its own 100 first; the client must not see two.
		io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: "+fmt.Sprint(len(body))+"\r\n\r\n")
		c.Write(body)
	})
	p, _ := newTestPipeline(t, nil)
	rev := startReverse(t, p, up)
	c, br := dialRaw(t, rev)
	io.WriteString(c, "POST /roap HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\nConnection: close\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("want a 100 Continue before sending the body, got %q %v", line, err)
	}
	io.WriteString(c, "ping")
	rest := readUntilClose(t, br)
	if strings.Count(rest, "100 Continue") != 0 || !strings.HasSuffix(rest, "\r\n\r\nping") || !strings.Contains(rest, "HTTP/1.1 200 OK") {
		t.Fatalf("after the 100: %q", rest)
	}
}

func TestReverseRefusesWhatItCannotForward(t *testing.T) {
	var reached atomic.Int64
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) { reached.Add(1) })
	p, store := newTestPipeline(t, nil)
	rev := startReverse(t, p, up)
	for _, tc := range []struct{ req, status string }{
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "400"},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "400"},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "400"},
		{"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", "400"},
		{"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", "400"},
		{"GET /\r\n\r\n", "400"},
		{"CONNECT ri.example:443 HTTP/1.1\r\nHost: ri.example:443\r\n\r\n", "405"},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "505"},
		{"GET / HTTP/1.1\r\nX-Big: " + strings.Repeat("a", maxHeadBytes) + "\r\n\r\n", "431"},
	} {
		c, br := dialRaw(t, rev)
		io.WriteString(c, tc.req)
		got := readUntilClose(t, br)
		if !strings.HasPrefix(got, "HTTP/1.1 "+tc.status+" ") || !strings.Contains(got, "roapproxy: ") {
			t.Errorf("%.40q: got %.120q, want %s and a reason", tc.req, got, tc.status)
		}
	}
	if reached.Load() != 0 || store.Len() != 0 {
		t.Fatalf("refused requests reached the upstream (%d) or were recorded (%d)", reached.Load(), store.Len())
	}
}

func TestReverseUpstreamFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(c net.Conn, br *bufio.Reader)
		want  string
	}{
		{"malformed head", func(c net.Conn, br *bufio.Reader) {
			readRawRequest(br)
			io.WriteString(c, "HTTP/1.1 2xx Fine\r\n\r\n")
		}, "malformed"},
		{"closed mid-body", func(c net.Conn, br *bufio.Reader) {
			readRawRequest(br)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
		}, "reading the response body"},
		{"silent", func(c net.Conn, br *bufio.Reader) {
			readRawRequest(br)
			time.Sleep(2 * time.Second)
		}, "did not answer within the timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := rawUpstream(t, tc.serve)
			store := captures.NewStore(captures.StoreOptions{}, captures.NewBus(64))
			p := NewPipeline(Config{Store: store, Timeout: 300 * time.Millisecond})
			t.Cleanup(p.Close)
			rev := startReverse(t, p, up)
			c, br := dialRaw(t, rev)
			io.WriteString(c, "POST /roap HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping")
			got := readUntilClose(t, br)
			if !strings.HasPrefix(got, "HTTP/1.1 502 ") || !strings.Contains(got, "X-Roapproxy-Error: upstream") || !strings.Contains(got, tc.want) {
				t.Fatalf("client got %q", got)
			}
			f := flowByID(t, store, 0)
			if f.StatusCode != 502 || !strings.Contains(f.Error, tc.want) || len(f.Findings) == 0 || f.Findings[0].Rule != RuleUpstream.ID {
				t.Fatalf("flow: %d %q %v", f.StatusCode, f.Error, f.Findings)
			}
		})
	}
}

func TestReverseCloseDelimitedAndHTTP10(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		h, _, err := readRawRequest(br)
		if err != nil {
			return
		}
		if !strings.HasPrefix(string(h), "GET /old HTTP/1.0\r\n") {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		// No length: the body runs to the close.
		io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Type: "+decode.MIMEPDU+"\r\n\r\n"+ldResp)
	})
	p, store := newTestPipeline(t, nil)
	rev := startReverse(t, p, up)
	c, br := dialRaw(t, rev)
	io.WriteString(c, "GET /old HTTP/1.0\r\n\r\n")
	got := readUntilClose(t, br)
	if !strings.HasPrefix(got, "HTTP/1.0 200 OK\r\n") || !strings.HasSuffix(got, "\r\n\r\n"+ldResp) {
		t.Fatalf("client got %q", got)
	}
	f := flowByID(t, store, 0)
	if f.Response.Message == nil || f.Response.Message.Kind != "leaveDomainResponse" || f.Proto != "HTTP/1.0" {
		t.Fatalf("close-delimited response not captured: %+v", f.Response)
	}
}

func TestReverseStreamsLargeChunkedBodies(t *testing.T) {
	chunk := strings.Repeat("<x>0123456789</x>", 100)
	var wire strings.Builder
	for range 40 {
		fmt.Fprintf(&wire, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	wire.WriteString("0\r\n\r\n")
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readRawRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+wire.String())
	})
	store := captures.NewStore(captures.StoreOptions{}, captures.NewBus(64))
	p := NewPipeline(Config{Store: store, MaxBody: 4096})
	t.Cleanup(p.Close)
	rev := startReverse(t, p, up)
	c, br := dialRaw(t, rev)
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	got := readUntilClose(t, br)
	if _, body, _ := strings.Cut(got, "\r\n\r\n"); body != wire.String() {
		t.Fatalf("streamed body differs from the wire: %d bytes, want %d", len(body), wire.Len())
	}
	f := flowByID(t, store, 0)
	if !f.Response.Truncated || len(f.Response.Body) != 4096 || f.Response.Size != int64(40*len(chunk)) || f.Response.Message != nil {
		t.Fatalf("large response: truncated %v, kept %d, size %d", f.Response.Truncated, len(f.Response.Body), f.Response.Size)
	}
}

func TestReverseShutdownLetsExchangesFinish(t *testing.T) {
	release := make(chan struct{})
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readRawRequest(br); err != nil {
			return
		}
		<-release
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
	})
	p, _ := newTestPipeline(t, nil)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	rv := NewReverse(p, up, ReverseOptions{})
	served := make(chan error, 1)
	go func() { served <- rv.Serve(l) }()

	idle, _ := net.Dial("tcp", l.Addr().String()) // never sends a request
	defer idle.Close()
	busy, _ := net.Dial("tcp", l.Addr().String())
	defer busy.Close()
	io.WriteString(busy, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(100 * time.Millisecond) // the exchange is now waiting on the upstream

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- rv.Shutdown(ctx)
	}()
	// The idle connection is closed at once; the busy one is waited for.
	_ = idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection: read %d, %v; want EOF", n, err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with an exchange in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "done" {
		t.Fatalf("in-flight exchange got %q", b)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("Serve returned %v", err)
	}
}

// FuzzH1 feeds arbitrary bytes to the HTTP/1.x reader the reverse engine uses on both sides:
// it must return an error or a head and body, never panic, and a body it read must be what the
// framing said.
func FuzzH1(f *testing.F) {
	f.Add([]byte("POST /roap HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping"), true)
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nping\r\n0\r\nT: 1\r\n\r\n"), true)
	f.Add([]byte("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\nrest of body"), false)
	f.Add([]byte("HTTP/1.0 204 No Content\r\n\r\n"), false)
	f.Fuzz(func(t *testing.T, in []byte, isRequest bool) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		h, _, err := readHead(br, nil, isRequest)
		if err != nil {
			return
		}
		fr, err := h.requestFraming()
		if !isRequest {
			fr, err = h.responseFraming(http.MethodGet)
		}
		if err != nil {
			return
		}
		var spilled bytes.Buffer
		b, err := readBody(br, fr, 64, func(wire []byte) (io.Writer, error) {
			spilled.Write(wire)
			return &spilled, nil
		})
		if err != nil {
			return
		}
		if !b.truncated && !fr.chunked && int64(len(b.data)) != b.size {
			t.Fatalf("read %d bytes of a %d-byte body", len(b.data), b.size)
		}
		if fr.length > 0 && b.size != fr.length {
			t.Fatalf("Content-Length %d, body %d", fr.length, b.size)
		}
		if b.truncated && len(b.data) > 64 {
			t.Fatalf("kept %d bytes over the limit", len(b.data))
		}
	})
}

// judgedAt records when each half was judged.
type judgedAt struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (j *judgedAt) Judge(f *captures.Flow, dir decode.Direction) ([]decode.Finding, []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.at[fmt.Sprintf("%d/%d", f.ID, dir)] = time.Now()
	return nil, nil
}

func (j *judgedAt) Tick(time.Time) []Late { return nil }

func TestAStepIsJudgedWithoutWaitingForItsExchangeToEnd(t *testing.T) {
	// Steps wake the analyser only at an exchange's end; a request whose answer is slow must
	// still be judged within the ticker's period, so the tracker's windows see it.
	answered := make(chan time.Time, 1)
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readRawRequest(br); err != nil {
			return
		}
		time.Sleep(2500 * time.Millisecond)
		answered <- time.Now()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	})
	j := &judgedAt{at: map[string]time.Time{}}
	store := captures.NewStore(captures.StoreOptions{}, captures.NewBus(64))
	p := NewPipeline(Config{Store: store, Judge: j})
	t.Cleanup(p.Close)
	rev := startReverse(t, p, up)
	resp, err := http.Post(rev.URL+"/roap", decode.MIMEPDU, strings.NewReader(ldResp))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	at := <-answered
	waitFlows(t, store, 1)
	j.mu.Lock()
	defer j.mu.Unlock()
	req, ok := j.at[fmt.Sprintf("1/%d", decode.DirRequest)]
	if !ok || !req.Before(at) {
		t.Fatalf("the request was judged at %v, the answer came at %v: it waited for the exchange to end", req, at)
	}
}

func TestCurlThroughReverseListener(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is not installed (.ci/run installs it)")
	}
	var mu sync.Mutex
	var got []string // what the upstream saw of each request: proto, framing, body digest
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		sum := sha256.Sum256(b)
		mu.Lock()
		got = append(got, fmt.Sprintf("%s te=%v expect=%q %x", r.Proto, r.TransferEncoding, r.Header.Get("Expect"), sum[:8]))
		mu.Unlock()
		w.Header().Set("Content-Type", decode.MIMEPDU)
		fmt.Fprintf(w, "%d %x", len(b), sum[:8])
	}))
	defer up.Close()
	p, store := newTestPipeline(t, nil)
	target, _ := url.Parse(up.URL)
	rev := startReverse(t, p, target)

	// Over a MiB: curl asks Expect: 100-continue and waits for it before sending the body.
	big := bytes.Repeat([]byte("<roap:x>0123456789abcdef</roap:x>\n"), 40000)
	bigPath := filepath.Join(t.TempDir(), "big.xml")
	if err := os.WriteFile(bigPath, big, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(big)
	small := sha256.Sum256([]byte(ldResp))
	for _, tc := range []struct {
		args []string
		want string // the answer curl prints
		saw  string // what the upstream saw
	}{
		{[]string{"--data-binary", "@" + bigPath}, fmt.Sprintf("%d %x", len(big), sum[:8]), fmt.Sprintf(`HTTP/1.1 te=[] expect="100-continue" %x`, sum[:8])},
		{[]string{"-H", "Transfer-Encoding: chunked", "--data-binary", ldResp}, fmt.Sprintf("%d %x", len(ldResp), small[:8]), fmt.Sprintf(`HTTP/1.1 te=[chunked] expect="" %x`, small[:8])},
		{[]string{"-0", "--data-binary", ldResp}, fmt.Sprintf("%d %x", len(ldResp), small[:8]), fmt.Sprintf(`HTTP/1.0 te=[] expect="" %x`, small[:8])},
	} {
		args := append([]string{"-sS", "--fail", "-H", "Content-Type: " + decode.MIMEPDU}, tc.args...)
		out, err := exec.Command(curl, append(args, rev.URL+"/roap")...).CombinedOutput()
		if err != nil || string(out) != tc.want {
			t.Fatalf("curl %v: %v: %q, want %q", tc.args[0], err, out, tc.want)
		}
		mu.Lock()
		last := got[len(got)-1]
		mu.Unlock()
		if last != tc.saw {
			t.Fatalf("curl %v: the upstream saw %q, want %q", tc.args[0], last, tc.saw)
		}
	}
	waitFlows(t, store, 3)
	if f := flowByID(t, store, 1); string(f.Request.Body) != ldResp || f.Request.Message == nil {
		t.Fatalf("the chunked upload was not captured dechunked and decoded: %q", f.Request.Body)
	}
}

func TestAJobQueueThatNeverDrainsStaysSmall(t *testing.T) {
	q := newJobQueue()
	for range 10 {
		q.push(&job{})
	}
	for i := range 100_000 {
		q.push(&job{})
		if _, left, ok := q.pop(); !ok || left != 10 {
			t.Fatalf("step %d: %d left, want 10", i, left)
		}
	}
	if c := cap(q.jobs); c > 4096 {
		t.Fatalf("backing array holds %d slots for a queue of 10", c)
	}
}

func TestReverseStreamsBodiesLongerThanTheClientTimeout(t *testing.T) {
	// A body above the capture limit may take longer to pass than the client timeout: the
	// timeout is for a client that stalls, not for a long body.
	chunk := strings.Repeat("z", 1024)
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		_, body, err := readRawRequest(br)
		if err != nil || len(body) != 8*1024 {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8192\r\n\r\n")
		for range 8 {
			time.Sleep(60 * time.Millisecond)
			io.WriteString(c, chunk)
		}
	})
	store := captures.NewStore(captures.StoreOptions{}, captures.NewBus(64))
	p := NewPipeline(Config{Store: store, MaxBody: 1024})
	t.Cleanup(p.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rv := NewReverse(p, up, ReverseOptions{ClientTimeout: 200 * time.Millisecond})
	go rv.Serve(l)
	t.Cleanup(func() { rv.Close() })
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The upload trickles too: eight 1 KiB pieces, 60 ms apart.
	io.WriteString(c, "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 8192\r\nConnection: close\r\n\r\n")
	for range 8 {
		time.Sleep(60 * time.Millisecond)
		io.WriteString(c, chunk)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := readUntilClose(t, bufio.NewReader(c))
	if !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got, "\r\n\r\n"+strings.Repeat(chunk, 8)) {
		t.Fatalf("the streamed exchange was cut short: %d bytes, %.60q", len(got), got)
	}
}

// readHead agrees with net/textproto on the fields of a head: repeated names keep every value
// in order, values of different fields do not share storage, and a head longer than the line
// table's first block parses whole.
func TestReadHeadAgreesWithTextproto(t *testing.T) {
	var b strings.Builder
	b.WriteString("POST /roap HTTP/1.1\r\nHost: ri.example\r\nX-Rep: one\r\nContent-Type: application/vnd.oma.drm.roap-pdu+xml\r\nX-Rep: two\r\n")
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&b, "x-field-%d:  value %d \t\r\n", i, i)
	}
	b.WriteString("x-rep: three\r\nContent-Length: 4\r\n\r\nping")
	raw := b.String()
	h, _, err := readHead(bufio.NewReader(strings.NewReader(raw)), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	tp := textproto.NewReader(bufio.NewReader(strings.NewReader(raw)))
	if _, err := tp.ReadLine(); err != nil {
		t.Fatal(err)
	}
	want, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(map[string][]string(h.header), map[string][]string(want)) {
		t.Fatalf("readHead: %v\ntextproto: %v", h.header, want)
	}
	if got := h.header["X-Rep"]; !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Fatalf("X-Rep = %q", got)
	}
	if len(h.fields) != 46 {
		t.Fatalf("%d fields kept, want 46", len(h.fields))
	}
}

// A head's strings are cut from one copy of it: what readHead allocates does not grow with the
// number of fields (it was one string per name and value).
func TestReadHeadAllocatesPerHeadNotPerField(t *testing.T) {
	head := func(fields int) string {
		var b strings.Builder
		b.WriteString("POST /roap HTTP/1.1\r\nHost: ri.example\r\n")
		for i := range fields {
			fmt.Fprintf(&b, "X-Field-%d: value %d\r\n", i, i)
		}
		b.WriteString("\r\n")
		return b.String()
	}
	allocs := func(raw string) float64 {
		r := strings.NewReader(raw)
		br := bufio.NewReaderSize(r, 64<<10)
		buf := make([]byte, 0, 64<<10)
		return testing.AllocsPerRun(50, func() {
			r.Reset(raw)
			br.Reset(r)
			if _, _, err := readHead(br, buf, true); err != nil {
				t.Fatal(err)
			}
		})
	}
	few, many := allocs(head(4)), allocs(head(40))
	t.Logf("%v allocations for 4 fields, %v for 40", few, many)
	// The header map grows with the fields; the strings must not: 36 more fields were 72 more
	// allocations before.
	if many-few > 12 {
		t.Errorf("%v allocations for 4 fields, %v for 40", few, many)
	}
}
