package sim

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Legs of the simulated topology: who talks to whom on an HTTP exchange.
const (
	LegDeviceRI = "device-ri"
	LegRIDEA    = "ri-dea"
	LegRIOCSP   = "ri-ocsp"
	LegDEARI    = "dea-ri"
	LegDEAOCSP  = "dea-ocsp"
)

// Exchange is one HTTP exchange made by a simulated peer, with the bodies exactly as they went
// over the wire.
type Exchange struct {
	Seq          int64
	Scenario     string
	Leg          string
	Method       string
	URL          string
	RequestType  string
	Request      []byte
	Status       int
	ResponseType string
	Response     []byte
	Err          error
	Start        time.Time
	Duration     time.Duration
}

// maxBody bounds what a simulated peer reads from one HTTP body.
const maxBody = 8 << 20

// exchangeSink receives exchanges; a nil sink drops them.
type exchangeSink func(Exchange)

// recorder is the http.RoundTripper every simulated client uses: it forwards through base and
// reports each exchange to the sink, labelled with its leg.
type recorder struct {
	leg  string
	base http.RoundTripper
	sink func() exchangeSink
	seq  *atomic.Int64
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(io.LimitReader(req.Body, maxBody))
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
	}
	ex := Exchange{Leg: r.leg, Method: req.Method, URL: req.URL.String(), RequestType: req.Header.Get("Content-Type"),
		Request: reqBody, Start: time.Now()}
	resp, err := r.base.RoundTrip(req)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		ex.Status, ex.ResponseType, ex.Response = resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	ex.Err, ex.Duration = err, time.Since(ex.Start)
	if r.seq != nil {
		ex.Seq = r.seq.Add(1)
	}
	if r.sink != nil {
		if s := r.sink(); s != nil {
			s(ex)
		}
	}
	return resp, err
}

// newTransport returns a transport that goes through proxy when it is not empty (an HTTP proxy
// URL), never through the environment's proxy settings, so a simulation is not silently routed
// elsewhere.
func newTransport(proxy string) (http.RoundTripper, error) {
	return newTLSTransport(proxy, nil)
}

// newTLSTransport is newTransport trusting roots (nil: the system's) for HTTPS peers, such as
// peers reached through an intercepting proxy whose CA the test or demo trusts.
func newTLSTransport(proxy string, roots *x509.CertPool) (http.RoundTripper, error) {
	t := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		Proxy:               nil,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	if proxy != "" {
		u, err := url.Parse(proxy)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("sim: bad proxy URL %q", proxy)
		}
		t.Proxy = http.ProxyURL(u)
	}
	return t, nil
}

// post sends body with content type ct and returns the response body; a non-2xx status is an
// error that quotes the beginning of the body.
func post(ctx context.Context, c *http.Client, u, ct string, body []byte) (int, string, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, "", nil, err
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", ct)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, "", nil, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, resp.Header.Get("Content-Type"), b, fmt.Errorf("POST %s: HTTP %d: %s", u, resp.StatusCode, clipText(b, 200))
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b, nil
}

func clipText(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// readBody reads a request body within maxBody.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusRequestEntityTooLarge)
		return nil, false
	}
	return b, true
}

func reply(w http.ResponseWriter, ct string, body []byte) {
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// logBook keeps the last lines a peer logged, for tests and the CLI.
type logBook struct {
	mu    sync.Mutex
	name  string
	lines []string
	out   func(string)
}

func (l *logBook) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	l.mu.Lock()
	l.lines = append(l.lines, line)
	if len(l.lines) > 500 {
		l.lines = append([]string(nil), l.lines[len(l.lines)-250:]...)
	}
	out := l.out
	l.mu.Unlock()
	if out != nil {
		out(l.name + ": " + line)
	}
}

// Log returns the lines logged so far.
func (l *logBook) Log() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// contains reports whether any logged line contains s.
func (l *logBook) contains(s string) bool {
	for _, line := range l.Log() {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// sortedKeys returns the keys of a set in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// UserDomain is the SCE user domain both simulated RIs proxy to the DEA.
const UserDomain = "ACMEUSERDOM42001"

// Device domains of the two simulated RIs, and the broadcast domain RI 1 names in its token
// deliveries.
const (
	DeviceDomain1 = "SIMRI1DOMAIN001"
	DeviceDomain2 = "SIMRI2DOMAIN001"
	TokenDomain   = "SIMBCAST01001"
)

// Options configure Start.
type Options struct {
	// PKI to use; nil generates one with 2048-bit keys (tests pass a shared 1024-bit one).
	PKI *PKI
	// Proxy is an HTTP proxy URL every simulated client (agents, RIs, DEA) sends through;
	// AgentProxy and PeerProxy override it for the agents and for the servers' own requests.
	Proxy, AgentProxy, PeerProxy string
	// MAC is the RDP MAC algorithm (default HMAC-SHA1).
	MAC MACAlg
	// Clock for every peer (nil: wall clock).
	Clock func() time.Time
	// Log receives the peers' log lines (nil: kept in memory only).
	Log func(string)
	// RootCAs are trusted for HTTPS peers (nil: the system roots); give it an intercepting
	// proxy's CA when peers are fronted with HTTPS.
	RootCAs *x509.CertPool
}

// Sim is a running simulation: an OCSP responder, two RIs (both proxying UserDomain to the
// DEA), the DEA and one agent per PKI device, all on loopback.
type Sim struct {
	PKI       *PKI
	OCSP      *OCSPResponder
	StaleOCSP *OCSPResponder // answers every request with a stale response
	RIs       []*RI
	DEA       *DEA
	Agents    []*Agent

	servers  []*http.Server
	listen   map[string]string // peer name → listening base URL
	sink     atomic.Pointer[exchangeSink]
	scenario atomic.Pointer[string]
	seq      atomic.Int64
	closing  sync.Once
}

// Peer names used by URL and SetFront.
const (
	PeerOCSP = "ocsp"
	PeerDEA  = "dea"
)

// Start builds the PKI (unless given) and starts every peer on 127.0.0.1.
func Start(opts Options) (*Sim, error) {
	p := opts.PKI
	if p == nil {
		var err error
		if p, err = NewPKI(PKIOptions{}); err != nil {
			return nil, err
		}
	}
	if len(p.RIs) < 2 || len(p.Devices) < 2 {
		return nil, errors.New("sim: the PKI needs at least 2 RIs and 2 devices")
	}
	if opts.MAC == "" {
		opts.MAC = HMACSHA1
	}
	if opts.AgentProxy == "" {
		opts.AgentProxy = opts.Proxy
	}
	if opts.PeerProxy == "" {
		opts.PeerProxy = opts.Proxy
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	s := &Sim{PKI: p, listen: map[string]string{}}
	fail := func(err error) (*Sim, error) {
		s.Close()
		return nil, err
	}
	transport := func(leg, proxy string) (http.RoundTripper, error) {
		base, err := newTLSTransport(proxy, opts.RootCAs)
		if err != nil {
			return nil, err
		}
		return &recorder{leg: leg, base: base, seq: &s.seq, sink: s.currentSink}, nil
	}

	s.OCSP = NewOCSPResponder(p)
	s.OCSP.SetClock(clock)
	s.StaleOCSP = NewOCSPResponder(p)
	s.StaleOCSP.SetClock(clock)
	s.StaleOCSP.SetFaults(OCSPFaults{Stale: true})
	mux := http.NewServeMux()
	mux.Handle("/stale/", http.StripPrefix("/stale", s.StaleOCSP))
	mux.Handle("/", s.OCSP)
	ocspURL, err := s.serve(PeerOCSP, mux)
	if err != nil {
		return fail(err)
	}

	deaT, err := transport(LegDEARI, opts.PeerProxy)
	if err != nil {
		return fail(err)
	}
	deaOCSP := &recorder{leg: LegDEAOCSP, base: deaT.(*recorder).base, seq: &s.seq, sink: s.currentSink}
	// The DEA's two kinds of outgoing request go through one client; the recorder tells the
	// legs apart by destination.
	s.DEA, err = NewDEA(DEAConfig{Identity: p.DEA, Roots: p.Roots(), Domains: []string{UserDomain}, OCSPURL: ocspURL + "/",
		Transport: legByHost{ocspHost: hostOf(ocspURL), ocsp: deaOCSP, other: deaT}, Clock: clock, Log: opts.Log})
	if err != nil {
		return fail(err)
	}
	deaURL, err := s.serve(PeerDEA, s.DEA)
	if err != nil {
		return fail(err)
	}
	s.DEA.SetPublicURL(deaURL)

	userKey := randomBytes(16)
	for i, id := range p.RIs[:2] {
		riDEA, err := transport(LegRIDEA, opts.PeerProxy)
		if err != nil {
			return fail(err)
		}
		riOCSP := &recorder{leg: LegRIOCSP, base: riDEA.(*recorder).base, seq: &s.seq, sink: s.currentSink}
		mk := randomBytes(20)
		if opts.MAC == HMACSHA256 {
			mk = randomBytes(32)
		}
		dom := []string{DeviceDomain1, DeviceDomain2}[i]
		cfg := RIConfig{Identity: id, Roots: p.Roots(), Alias: fmt.Sprintf("roapproxy RI %d", i+1),
			OCSPURL: ocspURL + "/", StaleOCSPURL: ocspURL + "/stale/",
			DeviceDomains: map[string][]byte{dom: randomBytes(16)}, UserDomains: map[string][]byte{UserDomain: userKey},
			DEA: &DEALink{URL: deaURL + "/rdp", ID: s.DEA.ID(), MK: mk, Alg: opts.MAC}, Authority: s.DEA,
			ExtendedLeaveTrigger: i == 1, Transport: legByHost{ocspHost: hostOf(ocspURL), ocsp: riOCSP, other: riDEA},
			Clock: clock, Log: opts.Log}
		if i == 0 {
			cfg.TokenDomainID = TokenDomain
		}
		ri, err := NewRI(cfg)
		if err != nil {
			return fail(err)
		}
		u, err := s.serve(id.Name, ri)
		if err != nil {
			return fail(err)
		}
		ri.SetPublicURL(u)
		s.DEA.AddRI(ri.ID(), u+"/rdp", mk, opts.MAC)
		s.RIs = append(s.RIs, ri)
	}
	for i, id := range p.Devices {
		t, err := transport(LegDeviceRI, opts.AgentProxy)
		if err != nil {
			return fail(err)
		}
		// The second device relies on RIs caching its certificate, so its leave requests carry
		// no chain and the RI must add deviceCertificateChain when proxying them.
		ag, err := NewAgent(AgentConfig{Identity: id, Roots: p.Roots(), Transport: t, Clock: clock, CacheChains: i == 1, Log: opts.Log})
		if err != nil {
			return fail(err)
		}
		s.Agents = append(s.Agents, ag)
	}
	return s, nil
}

// legByHost sends requests to the OCSP responder through one recorder and everything else
// through another, so each exchange is labelled with its leg.
type legByHost struct {
	ocspHost    string
	ocsp, other http.RoundTripper
}

func (l legByHost) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == l.ocspHost {
		return l.ocsp.RoundTrip(req)
	}
	return l.other.RoundTrip(req)
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Host
}

func (s *Sim) serve(name string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("sim: listening for %s: %w", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.servers = append(s.servers, srv)
	go func() { _ = srv.Serve(ln) }()
	u := "http://" + ln.Addr().String()
	s.listen[name] = u
	return u, nil
}

// URL returns the base URL a peer listens on: PeerOCSP, PeerDEA or an RI identity name
// (RIName(1), RIName(2)).
func (s *Sim) URL(peer string) string { return s.listen[peer] }

// SetFront tells the simulation that peer is reached through front (a reverse proxy in front of
// its listener): the peer advertises front in its messages and the others send to front.
func (s *Sim) SetFront(peer, front string) error {
	front = strings.TrimRight(front, "/")
	switch peer {
	case PeerOCSP:
		for _, ri := range s.RIs {
			ri.SetOCSPURL(front+"/", front+"/stale/")
		}
		s.DEA.SetOCSPURL(front + "/")
		return nil
	case PeerDEA:
		s.DEA.SetPublicURL(front)
		for _, ri := range s.RIs {
			ri.SetDEAURL(front + "/rdp")
		}
		return nil
	}
	for _, ri := range s.RIs {
		if ri.Name() == peer {
			ri.SetPublicURL(front)
			s.DEA.SetRIURL(ri.ID(), front+"/rdp")
			return nil
		}
	}
	return fmt.Errorf("sim: no peer named %q", peer)
}

// Observe sends every exchange the peers make to fn (nil stops).
func (s *Sim) Observe(fn func(Exchange)) {
	if fn == nil {
		s.sink.Store(nil)
		return
	}
	sink := exchangeSink(fn)
	s.sink.Store(&sink)
}

func (s *Sim) currentSink() exchangeSink {
	p := s.sink.Load()
	if p == nil {
		return nil
	}
	sink := *p
	name := ""
	if n := s.scenario.Load(); n != nil {
		name = *n
	}
	return func(ex Exchange) {
		ex.Scenario = name
		sink(ex)
	}
}

// Close stops every listener.
func (s *Sim) Close() {
	s.closing.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if s.DEA != nil {
			s.DEA.Wait()
		}
		for _, srv := range s.servers {
			_ = srv.Shutdown(ctx)
		}
	})
}

// RunOnce runs every scenario once, in order, reporting each exchange to out (nil: none). It
// goes on after a failing scenario and returns all failures.
func (s *Sim) RunOnce(ctx context.Context, out func(Exchange)) error {
	if out != nil {
		s.Observe(out)
		defer s.Observe(nil)
	}
	var errs []error
	for _, sc := range s.Scenarios() {
		if err := s.Run(ctx, sc); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// Run runs one scenario and waits until the DEA has delivered the triggers it started.
func (s *Sim) Run(ctx context.Context, sc Scenario) error {
	name := sc.Name
	s.scenario.Store(&name)
	defer s.scenario.Store(nil)
	err := sc.Run(ctx)
	s.DEA.Wait()
	if err != nil {
		return fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	return nil
}

// Loop runs the scenarios round robin at rate scenarios per second until ctx ends, reporting
// each result to report (nil: ignored).
func (s *Sim) Loop(ctx context.Context, rate float64, report func(name string, err error)) {
	if rate <= 0 {
		rate = 1
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	scs := s.Scenarios()
	for i := 0; ; i++ {
		sc := scs[i%len(scs)]
		err := s.Run(ctx, sc)
		if ctx.Err() != nil {
			return
		}
		if report != nil {
			report(sc.Name, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
