package intercept_test

import (
	"context"
	"crypto/x509"
	"net"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/intercept"
	"github.com/roapproxy/roapproxy/sim"
	"github.com/roapproxy/roapproxy/verify"
)

var (
	simPKIOnce sync.Once
	simPKI     *sim.PKI
	simPKIErr  error
)

// interceptSimPKI is one 1024-bit PKI per test binary: key generation dominates otherwise.
func interceptSimPKI(t *testing.T) *sim.PKI {
	simPKIOnce.Do(func() { simPKI, simPKIErr = sim.NewPKI(sim.PKIOptions{Bits: 1024}) })
	if simPKIErr != nil {
		t.Fatal(simPKIErr)
	}
	return simPKI
}

// proxyRig is a verifying pipeline with its store.
type proxyRig struct {
	store *captures.Store
	p     *intercept.Pipeline
	judge *intercept.VerifyJudge
}

func newRig(t *testing.T, tlsOpts *intercept.TLSOptions) *proxyRig {
	store := captures.NewStore(captures.StoreOptions{}, captures.NewBus(8192))
	judge := intercept.NewVerifyJudge(verify.New(verify.NewTrust(), verify.Options{}))
	p := intercept.NewPipeline(intercept.Config{Store: store, Judge: judge, Transport: intercept.NewTransport(intercept.TransportOptions{TLS: tlsOpts})})
	t.Cleanup(p.Close)
	return &proxyRig{store: store, p: p, judge: judge}
}

func (r *proxyRig) trustSim(s *sim.Sim) {
	t := r.judge.Verifier().Trust()
	t.AddAnchors(s.PKI.Root.Cert)
	for _, ri := range s.RIs {
		l := ri.DEALink()
		t.AddMACKey(verify.MACKey{RI: ri.ID(), DEA: l.ID, Key: l.MK})
	}
}

// settle waits until the store stops growing (flows are stored when their response is read).
func settle(store *captures.Store) {
	last := -1
	for store.Len() != last {
		last = store.Len()
		time.Sleep(100 * time.Millisecond)
	}
}

// findings returns every finding of every flow, by rule ID.
func findings(store *captures.Store) map[string][]decode.Finding {
	out := map[string][]decode.Finding{}
	for _, f := range store.Snapshot() {
		for _, x := range f.AllFindings() {
			out[x.Rule] = append(out[x.Rule], x)
		}
	}
	return out
}

func assertClean(t *testing.T, store *captures.Store) {
	t.Helper()
	for rule, fs := range findings(store) {
		for _, f := range fs {
			if f.Severity.Rank() >= decode.SevWarning.Rank() {
				t.Errorf("%s %s at %s: %s", f.Severity, rule, f.Path, f.Message)
			}
		}
	}
}

func legs(store *captures.Store) map[captures.Leg]int {
	out := map[captures.Leg]int{}
	for _, f := range store.Snapshot() {
		out[f.Leg]++
	}
	return out
}

// runAllForward runs every simulated scenario once through a verifying forward proxy and
// returns the rig once its store has settled.
func runAllForward(t *testing.T) *proxyRig {
	t.Helper()
	rig := newRig(t, nil)
	fwd := httptest.NewServer(intercept.NewForward(rig.p, intercept.ForwardOptions{}))
	defer fwd.Close()
	s, err := sim.Start(sim.Options{PKI: interceptSimPKI(t), Proxy: fwd.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rig.trustSim(s)
	if err := s.RunOnce(context.Background(), nil); err != nil {
		t.Fatalf("scenarios through the proxy: %v", err)
	}
	settle(rig.store)
	return rig
}

func TestSimThroughForwardProxyIsClean(t *testing.T) {
	rig := runAllForward(t)
	l := legs(rig.store)
	if l[captures.LegDeviceRI] == 0 || l[captures.LegRIDEA] == 0 || l[captures.LegDEARI] == 0 || l[captures.LegOCSP] == 0 {
		t.Fatalf("not every leg went through the proxy: %v", l)
	}
	assertClean(t, rig.store)
}

func TestSimThroughReverseListeners(t *testing.T) {
	rig := newRig(t, nil)
	s, err := sim.Start(sim.Options{PKI: interceptSimPKI(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rig.trustSim(s)
	// Every peer is fronted by its own reverse listener, as an operator would put roapproxy in
	// front of an RI and a DEA that devices and each other reach by URL.
	for _, peer := range []string{s.RIs[0].Name(), s.RIs[1].Name(), sim.PeerDEA, sim.PeerOCSP} {
		u, _ := url.Parse(s.URL(peer))
		front := startReverse(t, rig.p, u)
		defer front.Close()
		if err := s.SetFront(peer, front.URL); err != nil {
			t.Fatal(err)
		}
	}
	for _, sc := range s.Scenarios() {
		if sc.Name == sim.ScLeaveUserDomain || sc.Name == sim.ScTokens2Pass || sc.Name == sim.ScRegister {
			if err := s.Run(context.Background(), sc); err != nil {
				t.Fatal(err)
			}
		}
	}
	settle(rig.store)
	for _, f := range rig.store.Snapshot() {
		if f.Mode != "reverse" {
			t.Fatalf("flow %d mode %q", f.ID, f.Mode)
		}
	}
	if l := legs(rig.store); l[captures.LegRIDEA] == 0 || l[captures.LegDeviceRI] == 0 {
		t.Fatalf("legs %v", l)
	}
	assertClean(t, rig.store)
}

func TestSimOverInterceptedHTTPS(t *testing.T) {
	ca, _, err := intercept.LoadOrCreateCA(filepath.Join(t.TempDir(), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	s0, err := sim.Start(sim.Options{PKI: interceptSimPKI(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s0.Close()
	// The RIs are served over HTTPS (a TLS front per RI); the proxy must trust those fronts
	// upstream, and the simulated clients must trust the interception CA.
	upstreamRoots := x509.NewCertPool()
	var fronts []*httptest.Server
	for _, ri := range s0.RIs {
		u, _ := url.Parse(s0.URL(ri.Name()))
		f := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(u))
		defer f.Close()
		upstreamRoots.AddCert(f.Certificate())
		fronts = append(fronts, f)
	}
	rig := newRig(t, &intercept.TLSOptions{RootCAs: upstreamRoots})
	fwd := httptest.NewServer(intercept.NewForward(rig.p, intercept.ForwardOptions{CA: ca}))
	defer fwd.Close()
	s0.Close()
	clientRoots := x509.NewCertPool()
	clientRoots.AddCert(ca.Cert)
	s, err := sim.Start(sim.Options{PKI: interceptSimPKI(t), Proxy: fwd.URL, RootCAs: clientRoots})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rig.trustSim(s)
	for i, ri := range s.RIs {
		u, _ := url.Parse(s.URL(ri.Name()))
		fronts[i].Config.Handler = httputil.NewSingleHostReverseProxy(u)
		if err := s.SetFront(ri.Name(), fronts[i].URL); err != nil {
			t.Fatal(err)
		}
	}
	for _, sc := range s.Scenarios() {
		if sc.Name == sim.ScRegister || sc.Name == sim.ScRO2Pass || sc.Name == sim.ScTokens2Pass {
			if err := s.Run(context.Background(), sc); err != nil {
				t.Fatalf("%s over intercepted HTTPS: %v", sc.Name, err)
			}
		}
	}
	settle(rig.store)
	mitm := 0
	for _, f := range rig.store.Snapshot() {
		if f.Mode == "mitm" {
			mitm++
			if !strings.HasPrefix(f.URL, "https://") {
				t.Fatalf("mitm flow URL %s", f.URL)
			}
		}
	}
	if mitm < 5 {
		t.Fatalf("only %d intercepted HTTPS flows", mitm)
	}
	assertClean(t, rig.store)
}

// The seed 000 leave with both legs through one proxy: a faulty RI is caught by the rules that
// need both legs.
func TestSeed000CrossLegFindingsThroughProxy(t *testing.T) {
	cases := []struct {
		name  string
		fault sim.RIFaults
		dea   sim.DEAFaults
		want  string
	}{
		{"RI forwards Success although the DEA refused", sim.RIFaults{ForwardWrongStatus: true}, sim.DEAFaults{WrongStatus: "InvalidDomain"}, "DOM-7.5.3.2-STATUS-ECHO"},
		{"RI re-serializes the device's request", sim.RIFaults{ModifyEmbeddedLDR: true}, sim.DEAFaults{}, "DOM-7.5.2-LDR-VERBATIM"},
		{"RI names another domain to the device", sim.RIFaults{WrongDomainEcho: true}, sim.DEAFaults{}, "DOM-7.5.3.2-DOMAIN-ECHO"},
		// The nonce fault corrupts the join that precedes the leave, and the agent stops there.
		{"RI echoes another nonce", sim.RIFaults{WrongNonceEcho: true}, sim.DEAFaults{}, "ROAP-NONCE-ECHO"},
		{"DEA answers with the wrong status", sim.RIFaults{}, sim.DEAFaults{WrongStatus: "SignatureError"}, "DOM-7.5.2-EXPECTED-STATUS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rig := newRig(t, nil)
			fwd := httptest.NewServer(intercept.NewForward(rig.p, intercept.ForwardOptions{}))
			defer fwd.Close()
			s, err := sim.Start(sim.Options{PKI: interceptSimPKI(t), Proxy: fwd.URL})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rig.trustSim(s)
			for _, ri := range s.RIs {
				ri.SetFaults(c.fault)
			}
			s.DEA.SetFaults(c.dea)
			for _, sc := range s.Scenarios() {
				if sc.Name == sim.ScLeaveUserDomain {
					_ = s.Run(context.Background(), sc) // the agent may notice the fault too
				}
			}
			settle(rig.store)
			got := findings(rig.store)
			if len(got[c.want]) == 0 {
				var seen []string
				for r := range got {
					seen = append(seen, r)
				}
				t.Fatalf("no %s finding; saw %v", c.want, seen)
			}
			// And the flows of the exchange share a correlation key, so the UI can draw them.
			var ld *captures.Flow
			for _, f := range rig.store.Snapshot() {
				if f.Response.Message != nil && f.Response.Message.Kind == "leaveDomainResponse" {
					ld = f
				}
			}
			if ld == nil && c.want == "ROAP-NONCE-ECHO" {
				return // no leave happened: the agent refused the corrupted join
			}
			if ld == nil || len(ld.Correlation) == 0 || !strings.HasPrefix(ld.Correlation[0], "leave:") {
				t.Fatalf("leave flow not correlated: %+v", ld)
			}
			related, nested := 0, 0
			for _, f := range rig.store.Snapshot() {
				for _, k := range f.Correlation {
					if k == ld.Correlation[0] && f.Leg == captures.LegRIDEA {
						related++
						// The sequence diagram relies on this: the proxy leave the RI makes while
						// the device waits is read in full before the device's answer is.
						if m := f.Request.Message; m != nil && m.Kind == "rdpProxyLeaveUserDomainRequest" && f.Timings.Received.After(ld.Timings.Received) {
							nested++
							if !f.Timings.Responded.Before(ld.Timings.Responded) {
								t.Errorf("nested RI-DEA flow %d answered after the device's leave %d: %+v vs %+v", f.ID, ld.ID, f.Timings, ld.Timings)
							}
						}
					}
				}
			}
			if nested == 0 {
				t.Errorf("no proxy leave nested in the device's leave %d", ld.ID)
			}
			if related == 0 {
				t.Fatalf("no RI-DEA flow shares the device leave's key %s", ld.Correlation[0])
			}
		})
	}
}

// reverseFront is a reverse listener on loopback, for tests.
type reverseFront struct {
	URL string
	rv  *intercept.Reverse
}

func (r *reverseFront) Close() { r.rv.Close() }

// startReverse serves a reverse listener in front of target on a loopback port.
func startReverse(t testing.TB, p *intercept.Pipeline, target *url.URL) *reverseFront {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rv := intercept.NewReverse(p, target, intercept.ReverseOptions{})
	go rv.Serve(l)
	t.Cleanup(func() { rv.Close() })
	return &reverseFront{URL: "http://" + l.Addr().String(), rv: rv}
}

// verdicts runs every simulated scenario once through a verifying forward proxy and returns,
// sorted, one line per flow: its leg, message kinds and findings.
func verdicts(t *testing.T) []string {
	t.Helper()
	rig := runAllForward(t)
	var out []string
	for _, f := range rig.store.Snapshot() {
		line := string(f.Leg)
		for _, m := range []*decode.Message{f.Request.Message, f.Response.Message} {
			if m != nil {
				line += " " + m.Kind
			}
		}
		for _, x := range f.AllFindings() {
			line += " " + x.Rule + "(" + string(x.Severity) + ")"
		}
		out = append(out, line)
	}
	sort.Strings(out)
	return out
}

// The pipeline hands each judged flow's parse trees to the next parse. Every scenario must be
// judged the same with that reuse (twice over, so arenas made by one run serve the next) as with
// trees in fresh memory.
func TestRecycledTreesKeepEveryVerdict(t *testing.T) {
	defer decode.SetRecycleMode(decode.SetRecycleMode(decode.RecycleOff))
	want := verdicts(t)
	if len(want) < 20 {
		t.Fatalf("only %d flows", len(want))
	}
	decode.SetRecycleMode(decode.RecycleOn)
	for run := 0; run < 2; run++ {
		if got := verdicts(t); !slices.Equal(got, want) {
			t.Fatalf("run %d with reuse:\n%s\nwithout:\n%s", run, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}
