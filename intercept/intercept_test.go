package intercept

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
)

const ldResp = `<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success"><nonce>T1Sq3LQMzhRwj5eASuy5LA==</nonce><domainID>ACMEUSERDOM42001</domainID></roap:leaveDomainResponse>`

func newTestPipeline(t testing.TB, judge Judge) (*Pipeline, *captures.Store) {
	t.Helper()
	store := captures.NewStore(captures.StoreOptions{MaxBytes: 1 << 30}, captures.NewBus(1024))
	p := NewPipeline(Config{Store: store, Judge: judge, Transport: NewTransport(TransportOptions{TLS: &TLSOptions{Insecure: true}})})
	t.Cleanup(p.Close)
	return p, store
}

// revServer is a reverse listener on loopback, for tests.
type revServer struct {
	URL      string
	Listener net.Listener
	rv       *Reverse
}

func (r *revServer) Close() { r.rv.Close() }

// Settle waits until no exchange is in flight, as the proxy's shutdown does before it closes
// its pipeline: a client can hold its whole answer a moment before the exchange's last step is
// queued.
func (r *revServer) Settle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.rv.busy() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("exchanges still in flight after 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// startReverse serves a reverse listener in front of target on a loopback port.
func startReverse(t testing.TB, p *Pipeline, target *url.URL) *revServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rv := NewReverse(p, target, ReverseOptions{TLS: &TLSOptions{Insecure: true}})
	go rv.Serve(l)
	t.Cleanup(func() { rv.Close() })
	return &revServer{URL: "http://" + l.Addr().String(), Listener: l, rv: rv}
}

// waitFlows waits until the store holds n flows; flows are stored when the client has read
// the response, which can be just after the client's call returns.
func waitFlows(t testing.TB, s *captures.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Len() < n {
		if time.Now().After(deadline) {
			t.Fatalf("store holds %d flows, want %d", s.Len(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawExchange sends raw request bytes over TCP and returns the raw response bytes, so framing
// can be compared exactly.
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d|CL=%d|TE=%v|%s", resp.StatusCode, resp.ContentLength, resp.TransferEncoding, b)
}

func TestReverseIsByteExact(t *testing.T) {
	reqBody := []byte(`<roap:leaveDomainRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0">  odd	spacing &amp; bytes stay </roap:leaveDomainRequest>`)
	var gotBody []byte
	var gotHeader http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotBody, _ = io.ReadAll(r.Body)
		gotHeader = r.Header.Clone()
		w.Header().Set("Content-Type", decode.MIMEPDU)
		w.Header().Set("Content-Length", fmt.Sprint(len(ldResp)))
		w.Header().Set("X-Upstream", "yes")
		io.WriteString(w, ldResp)
	}))
	defer up.Close()
	p, store := newTestPipeline(t, nil)
	target, _ := url.Parse(up.URL)
	rev := startReverse(t, p, target)
	defer rev.Close()

	direct := rawExchange(t, up.Listener.Addr().String(), "POST /roap HTTP/1.1\r\nHost: x\r\nContent-Type: "+decode.MIMEPDU+"\r\nContent-Length: "+fmt.Sprint(len(reqBody))+"\r\n\r\n"+string(reqBody))
	via := rawExchange(t, rev.Listener.Addr().String(), "POST /roap HTTP/1.1\r\nHost: x\r\nContent-Type: "+decode.MIMEPDU+"\r\nX-Device: phone-1\r\nContent-Length: "+fmt.Sprint(len(reqBody))+"\r\n\r\n"+string(reqBody))
	if direct != via {
		t.Fatalf("response differs through the proxy:\ndirect %s\nproxy  %s", direct, via)
	}
	if !strings.Contains(via, "CL=") || strings.Contains(via, "chunked") {
		t.Fatalf("framing changed: %s", via)
	}
	if !bytes.Equal(gotBody, reqBody) {
		t.Fatalf("upstream got %q, want %q", gotBody, reqBody)
	}
	if gotHeader.Get("X-Device") != "phone-1" || gotHeader.Get("Accept-Encoding") != "" || gotHeader.Get("User-Agent") != "" {
		t.Fatalf("request headers were altered: %v", gotHeader)
	}
	waitFlows(t, store, 1)
	f, _ := store.Get(store.Snapshot()[0].ID)
	if !bytes.Equal(f.Request.Body, reqBody) || string(f.Response.Body) != ldResp {
		t.Fatal("captured bodies differ from the wire")
	}
	if f.Response.Message == nil || f.Response.Message.Kind != "leaveDomainResponse" || f.Leg != captures.LegDeviceRI {
		t.Fatalf("flow not decoded: leg %q, response %+v", f.Leg, f.Response.Message)
	}
	if f.Timings.Received.IsZero() || f.Timings.FirstByte.Before(f.Timings.SentUpstream) || f.Timings.Responded.Before(f.Timings.FirstByte) || f.Timings.Done.Before(f.Timings.Responded) {
		t.Fatalf("timings out of order: %+v", f.Timings)
	}
}

func TestUnparseableBytesPassUntouched(t *testing.T) {
	junk := []byte{0x00, 0xff, '<', 'r', 'o', 'a', 'p', 0xfe, '>', 0x01}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", decode.MIMEPDU)
		w.Write(b) // echo
	}))
	defer up.Close()
	p, store := newTestPipeline(t, nil)
	target, _ := url.Parse(up.URL)
	rev := startReverse(t, p, target)
	defer rev.Close()
	resp, err := http.Post(rev.URL+"/roap", decode.MIMEPDU, bytes.NewReader(junk))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, junk) {
		t.Fatalf("junk altered: %x", got)
	}
	waitFlows(t, store, 1)
	f := store.Snapshot()[0]
	if f.Request.Message.Kind != "unknown" || f.Request.Message.Worst() != decode.SevError {
		t.Fatalf("junk claiming ROAP should decode to unknown with an error finding: %+v", f.Request.Message)
	}
}

func TestUpstreamDownGives502AndFinding(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	p, store := newTestPipeline(t, nil)
	target, _ := url.Parse(dead)
	rev := startReverse(t, p, target)
	defer rev.Close()
	resp, err := http.Post(rev.URL+"/roap", decode.MIMEPDU, strings.NewReader(ldResp))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "upstream") || resp.Header.Get("X-Roapproxy-Error") != "upstream" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	waitFlows(t, store, 1)
	f := store.Snapshot()[0]
	if f.Error == "" || len(f.Findings) == 0 || f.Findings[0].Rule != RuleUpstream.ID {
		t.Fatalf("flow has no upstream finding: %+v", f.Findings)
	}
}

func TestForwardPlainHTTP(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", decode.MIMEPDU)
		io.WriteString(w, ldResp)
	}))
	defer up.Close()
	p, store := newTestPipeline(t, nil)
	fwd := httptest.NewServer(NewForward(p, ForwardOptions{}))
	defer fwd.Close()
	pu, _ := url.Parse(fwd.URL)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	resp, err := c.Post(up.URL+"/roap", decode.MIMEPDU, strings.NewReader(ldResp))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != ldResp {
		t.Fatalf("body %q", b)
	}
	waitFlows(t, store, 1)
	if f := store.Snapshot()[0]; f.Mode != "forward" || f.Response.Message.Kind != "leaveDomainResponse" {
		t.Fatalf("flow %+v", f)
	}
}

// tlsUpstream starts an HTTPS RI stand-in.
func tlsUpstream(t *testing.T) *httptest.Server {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", decode.MIMEPDU)
		io.WriteString(w, ldResp)
	}))
	t.Cleanup(up.Close)
	return up
}

func TestForwardHTTPSInterception(t *testing.T) {
	up := tlsUpstream(t)
	ca, created, err := LoadOrCreateCA(filepath.Join(t.TempDir(), "cfg"))
	if err != nil || !created {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(ca.Dir, caKeyFile))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode %v, want 0600", st.Mode().Perm())
	}
	p, store := newTestPipeline(t, nil)
	fwd := httptest.NewServer(NewForward(p, ForwardOptions{CA: ca}))
	defer fwd.Close()
	pu, _ := url.Parse(fwd.URL)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Post(up.URL+"/roap", decode.MIMEPDU, strings.NewReader(ldResp))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != ldResp {
		t.Fatalf("body %q", b)
	}
	if resp.TLS == nil || resp.TLS.PeerCertificates[0].Issuer.CommonName != ca.Cert.Subject.CommonName {
		t.Fatal("the client did not see a leaf issued by the roapproxy CA")
	}
	waitFlows(t, store, 1)
	if f := store.Snapshot()[0]; f.Mode != "mitm" || f.Response.Message.Kind != "leaveDomainResponse" {
		t.Fatalf("flow %+v", f)
	}
	// Same leaf on the next CONNECT: cached, not minted per tunnel.
	l1, _ := ca.Leaf("127.0.0.1")
	l2, _ := ca.Leaf("127.0.0.1:443")
	if l1 != l2 {
		t.Fatal("leaf certificate not cached per host")
	}
	// A reloaded CA is the same CA.
	again, created, err := LoadOrCreateCA(ca.Dir)
	if err != nil || created || !again.Cert.Equal(ca.Cert) {
		t.Fatalf("reload: created=%v err=%v", created, err)
	}
}

func TestCurlThroughInterceptionWithExportedCA(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is not installed (.ci/run installs it)")
	}
	up := tlsUpstream(t)
	ca, _, err := LoadOrCreateCA(filepath.Join(t.TempDir(), "cfg"))
	if err != nil {
		t.Fatal(err)
	}
	pemPath := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(pemPath, ca.PEM(), 0o644)
	p, store := newTestPipeline(t, nil)
	fwd := httptest.NewServer(NewForward(p, ForwardOptions{CA: ca}))
	defer fwd.Close()
	out, err := exec.Command(curl, "-sS", "--fail", "--proxy", fwd.URL, "--cacert", pemPath,
		"-H", "Content-Type: "+decode.MIMEPDU, "--data-binary", ldResp, up.URL+"/roap").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if string(out) != ldResp {
		t.Fatalf("curl got %q", out)
	}
	waitFlows(t, store, 1)
	// Without the CA, curl must refuse: proof that interception really happened.
	if out, err := exec.Command(curl, "-sS", "--proxy", fwd.URL, up.URL+"/roap").CombinedOutput(); err == nil {
		t.Fatalf("curl accepted the intercepted certificate without trusting the CA: %s", out)
	}
}

func TestPassthroughHostIsTunnelledUntouched(t *testing.T) {
	up := tlsUpstream(t)
	ca, _, _ := LoadOrCreateCA(filepath.Join(t.TempDir(), "cfg"))
	p, store := newTestPipeline(t, nil)
	fwd := httptest.NewServer(NewForward(p, ForwardOptions{CA: ca, Passthrough: []string{"127.0.0.1"}}))
	defer fwd.Close()
	pu, _ := url.Parse(fwd.URL)
	pool := x509.NewCertPool()
	pool.AddCert(up.Certificate())
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(up.URL + "/")
	if err != nil {
		t.Fatalf("passthrough host: %v", err)
	}
	resp.Body.Close()
	if !resp.TLS.PeerCertificates[0].Equal(up.Certificate()) {
		t.Fatal("passthrough host got an intercepted certificate")
	}
	time.Sleep(50 * time.Millisecond)
	if store.Len() != 0 {
		t.Fatal("a passthrough tunnel must not produce flows")
	}
}

func TestCAWellKnownHost(t *testing.T) {
	ca, _, _ := LoadOrCreateCA(filepath.Join(t.TempDir(), "cfg"))
	p, store := newTestPipeline(t, nil)
	fwd := httptest.NewServer(NewForward(p, ForwardOptions{CA: ca}))
	defer fwd.Close()
	pu, _ := url.Parse(fwd.URL)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	resp, err := c.Get("http://" + CAHost + "/roapproxy-ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(der, ca.Cert.Raw) {
		t.Fatal("the .crt download is not the CA certificate")
	}
	resp, _ = c.Get("http://" + CAHost + "/")
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), ca.Fingerprint()) || !strings.Contains(string(page), "Android") {
		t.Fatal("CA page lacks the fingerprint or the Android instructions")
	}
	if store.Len() != 0 {
		t.Fatal("the CA host must never become traffic")
	}
}

func TestConcurrentClientsNoErrors(t *testing.T) {
	var served atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		served.Add(1)
		w.Header().Set("Content-Type", decode.MIMEPDU)
		w.Write(b)
	}))
	defer up.Close()
	p, store := newTestPipeline(t, nil)
	target, _ := url.Parse(up.URL)
	rev := startReverse(t, p, target)
	defer rev.Close()
	const clients, each = 64, 200
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	var errs atomic.Int64
	var firstErr atomic.Value
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < each; j++ {
				body := fmt.Sprintf(`<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success"><nonce>%d-%d</nonce></roap:leaveDomainResponse>`, i, j)
				resp, err := c.Post(rev.URL+"/roap", decode.MIMEPDU, strings.NewReader(body))
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(got) != body {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d body %q", resp.StatusCode, got))
				}
			}
		}(i)
	}
	wg.Wait()
	if errs.Load() != 0 {
		t.Fatalf("%d errors out of %d requests; first: %v", errs.Load(), clients*each, firstErr.Load())
	}
	if served.Load() != clients*each {
		t.Fatalf("upstream served %d", served.Load())
	}
	waitFlows(t, store, clients*each)
}

func TestBodilessPollTakesTheLegItsHostServes(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.WriteHeader(http.StatusNoContent) // nothing queued for the device
			return
		}
		w.Header().Set("Content-Type", decode.MIMEPDU)
		io.WriteString(w, ldResp)
	}))
	defer up.Close()
	p, store := newTestPipeline(t, nil)
	target, _ := url.Parse(up.URL)
	rev := startReverse(t, p, target)
	defer rev.Close()
	if resp, err := http.Get(rev.URL + "/push?deviceID=x"); err == nil {
		resp.Body.Close()
	}
	waitFlows(t, store, 1)
	if l := store.Snapshot()[0].Leg; l != captures.LegOther {
		t.Fatalf("a poll to an unknown host is leg %q, want other", l)
	}
	resp, _ := http.Post(rev.URL+"/roap", decode.MIMEPDU, strings.NewReader("<x/>"))
	resp.Body.Close()
	resp, _ = http.Get(rev.URL + "/push?deviceID=x")
	resp.Body.Close()
	waitFlows(t, store, 3)
	if l := store.Snapshot()[2].Leg; l != captures.LegDeviceRI {
		t.Fatalf("a poll to a host known to serve ROAP is leg %q, want device-ri", l)
	}
}

func TestBodiesAboveTheLimitStreamThroughUndecoded(t *testing.T) {
	big := bytes.Repeat([]byte("<x>0123456789</x>"), 4096) // 68 KiB
	var got []byte
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", decode.MIMEPDU)
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		w.Write(big)
	}))
	defer up.Close()
	store := captures.NewStore(captures.StoreOptions{}, captures.NewBus(64))
	p := NewPipeline(Config{Store: store, MaxBody: 1024})
	defer p.Close()
	target, _ := url.Parse(up.URL)
	rev := startReverse(t, p, target)
	defer rev.Close()
	resp, err := http.Post(rev.URL+"/roap", decode.MIMEPDU, bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	back, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, big) || !bytes.Equal(back, big) || resp.ContentLength != int64(len(big)) {
		t.Fatalf("bodies altered: upstream got %d bytes, client got %d (Content-Length %d), want %d", len(got), len(back), resp.ContentLength, len(big))
	}
	waitFlows(t, store, 1)
	f := store.Snapshot()[0]
	if !f.Request.Truncated || !f.Response.Truncated || len(f.Request.Body) != 1024 || f.Request.Message != nil || f.Response.Message != nil {
		t.Fatalf("large bodies must be kept as a prefix and not decoded: %+v", f.Request)
	}
	n := 0
	for _, x := range f.Findings {
		if x.Rule == RuleBodyLimit.ID && x.Severity == decode.SevInfo {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("want a PROXY-BODY-LIMIT info finding per body: %+v", f.Findings)
	}
}

// gateJudge blocks every Judge call until its gate opens, and records the order of the halves.
type gateJudge struct {
	gate  chan struct{}
	mu    sync.Mutex
	order []string
}

func (g *gateJudge) Judge(f *captures.Flow, dir decode.Direction) ([]decode.Finding, []string) {
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	g.order = append(g.order, fmt.Sprintf("%d/%v", f.ID, dir))
	return nil, nil
}

func (g *gateJudge) Tick(time.Time) []Late { return nil }

// judgedRig is a reverse listener in front of an upstream that answers every request with a
// leaveDomainResponse, through a pipeline with the given judge and analysis budget (0: default).
func judgedRig(t *testing.T, judge Judge, budget int64) (*Pipeline, *captures.Store, *revServer) {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", decode.MIMEPDU)
		io.WriteString(w, ldResp)
	}))
	t.Cleanup(up.Close)
	store := captures.NewStore(captures.StoreOptions{MaxBytes: 1 << 30}, captures.NewBus(1024))
	p := NewPipeline(Config{Store: store, Judge: judge, AnalysisBudget: budget})
	target, _ := url.Parse(up.URL)
	rev := startReverse(t, p, target)
	t.Cleanup(rev.Close)
	return p, store, rev
}

func TestAnalysisNeverHoldsUpForwarding(t *testing.T) {
	g := &gateJudge{gate: make(chan struct{})}
	p, store, rev := judgedRig(t, g, 0)

	// With the judge stuck, every exchange still completes, byte for byte.
	const n = 20
	for i := 0; i < n; i++ {
		resp, err := http.Post(rev.URL+"/roap", decode.MIMEPDU, strings.NewReader(`<roap:leaveDomainRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0"/>`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != ldResp {
			t.Fatalf("exchange %d: got %q", i, b)
		}
	}
	if got := store.Len(); got != 0 {
		t.Fatalf("%d flows stored while their analysis was blocked", got)
	}
	// Released, the analyser catches up in wire order, and Close leaves nothing behind.
	close(g.gate)
	rev.Settle(t)
	p.Close()
	if got := store.Len(); got != n {
		t.Fatalf("%d flows stored after Close, want %d", got, n)
	}
	var want []string
	for _, f := range store.Snapshot() {
		want = append(want, fmt.Sprintf("%d/%v", f.ID, decode.DirRequest), fmt.Sprintf("%d/%v", f.ID, decode.DirResponse))
		if f.Request.Message == nil || f.Response.Message == nil || f.Response.Message.Kind != "leaveDomainResponse" {
			t.Fatalf("flow %d not decoded: %+v", f.ID, f)
		}
		if f.Timings.Done.Before(f.Timings.Responded) || f.Timings.Responded.Before(f.Timings.Received) {
			t.Fatalf("flow %d timings out of order: %+v", f.ID, f.Timings)
		}
	}
	if !slices.Equal(g.order, want) {
		t.Fatalf("judged in order %v, want %v", g.order, want)
	}
	// After Close, an exchange is still forwarded and analysed, inline.
	resp, err := http.Post(rev.URL+"/roap", decode.MIMEPDU, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	waitFlows(t, store, n+1)
}

func TestAnalysisBudgetHoldsForwardingBack(t *testing.T) {
	g := &gateJudge{gate: make(chan struct{})}
	p, store, rev := judgedRig(t, g, 1024)
	body := `<roap:leaveDomainRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0">` + strings.Repeat("x", 600) + `</roap:leaveDomainRequest>`
	post := func() <-chan error {
		done := make(chan error, 1)
		go func() {
			resp, err := http.Post(rev.URL+"/roap", decode.MIMEPDU, strings.NewReader(body))
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			done <- err
		}()
		return done
	}
	// The first exchange fits in the budget (its request and response are about 900 bytes)...
	if err := <-post(); err != nil {
		t.Fatal(err)
	}
	// ...the second does not while the first is still waiting for the stuck judge.
	second := post()
	select {
	case err := <-second:
		t.Fatalf("the second exchange completed (%v) with the analysis budget full", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(g.gate)
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	rev.Settle(t)
	p.Close()
	if store.Len() != 2 {
		t.Fatalf("%d flows stored, want 2", store.Len())
	}
}

func TestByteBudget(t *testing.T) {
	b := newByteBudget(100)
	var drains atomic.Int64
	drain := func() { drains.Add(1) }
	if got := b.acquire(250, drain); got != 100 {
		t.Fatalf("a body larger than the budget takes the whole budget, got %d", got)
	}
	if got := b.acquire(0, drain); got != 0 {
		t.Fatalf("nothing to hold took %d", got)
	}
	took := make(chan int64)
	go func() { took <- b.acquire(10, drain) }()
	select {
	case n := <-took:
		t.Fatalf("acquired %d of a full budget", n)
	case <-time.After(100 * time.Millisecond):
	}
	b.release(100)
	if n := <-took; n != 10 {
		t.Fatalf("took %d", n)
	}
	// Whoever waits for bytes first asks for the queue to be drained: the analyser may be
	// asleep, waiting for a wake-up that only a finished exchange would send.
	if drains.Load() == 0 {
		t.Fatal("a full budget waited without asking for a drain")
	}
}

// lagJudge holds every half of flows from ID 2 on until released, and records its ticks.
type lagJudge struct {
	release chan struct{}
	mu      sync.Mutex
	ticks   []time.Time
}

func (g *lagJudge) Judge(f *captures.Flow, dir decode.Direction) ([]decode.Finding, []string) {
	if f.ID >= 2 {
		<-g.release
	}
	return nil, nil
}

func (g *lagJudge) Tick(now time.Time) []Late {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ticks = append(g.ticks, now)
	return nil
}

func TestWindowsExpireOnTheJudgesClock(t *testing.T) {
	g := &lagJudge{release: make(chan struct{})}
	p, store, rev := judgedRig(t, g, 0)
	send := func() {
		resp, err := http.Post(rev.URL+"/roap", decode.MIMEPDU, strings.NewReader(`<roap:leaveDomainRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0"/>`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send()
	waitFlows(t, store, 1)
	time.Sleep(20 * time.Millisecond)
	stuck := time.Now()
	send() // its analysis is held: the judge has seen nothing after flow 1
	deadline := time.Now().Add(5 * time.Second)
	for {
		g.mu.Lock()
		n := len(g.ticks)
		var last time.Time
		if n > 0 {
			last = g.ticks[n-1]
		}
		g.mu.Unlock()
		if n > 0 && last.After(stuck) {
			t.Fatalf("ticked at %v, after flow 2 passed (%v) while the judge had not seen it", last, stuck)
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no tick")
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(g.release)
	p.Close()
}
