package verify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/sim"
)

// tap is a minimal forward proxy that every simulated peer sends through: it observes each
// request before forwarding it and each response before returning it, as the real proxy does,
// so the verifier sees the traffic in wire order (a device's leaveDomainRequest before the RI's
// RDP request that embeds it).
type tap struct {
	t         *testing.T
	v         *Verifier
	clock     func() time.Time
	transport *http.Transport

	mu      sync.Mutex
	seq     int
	seen    []seenMsg
	decoded int
}

type seenMsg struct {
	kind   string
	res    Result
	decode []decode.Finding
}

func legOf(path string) Leg {
	switch {
	case strings.HasSuffix(path, "/rdp"):
		return LegRIDEA
	case strings.HasSuffix(path, "/roap"), strings.HasSuffix(path, "/token"), strings.HasSuffix(path, "/token-report"), strings.HasSuffix(path, "/push"):
		return LegDeviceRI
	}
	return LegUnknown
}

func (p *tap) observe(body []byte, h decode.Hint, o Observation) *decode.Message {
	if len(body) == 0 || strings.Contains(h.ContentType, "ocsp") {
		return nil
	}
	m := decode.Decode(body, h)
	if m.Family == decode.FamilyUnknown {
		return m
	}
	o.Message, o.Time = m, p.clock()
	res := p.v.Track(o)
	p.mu.Lock()
	p.decoded++
	p.seen = append(p.seen, seenMsg{kind: m.Kind, res: res, decode: m.Findings})
	p.mu.Unlock()
	return m
}

func (p *tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	p.mu.Lock()
	p.seq++
	ex := fmt.Sprint("x", p.seq)
	p.mu.Unlock()
	leg := legOf(r.URL.Path)
	base := Observation{Leg: leg, Exchange: ex, Server: r.URL.Host, URL: r.URL.String()}
	o := base
	o.Direction = decode.DirRequest
	reqMsg := p.observe(body, decode.Hint{ContentType: r.Header.Get("Content-Type"), Direction: decode.DirRequest}, o)

	out, err := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	rb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if resp.StatusCode == http.StatusOK {
		answers := ""
		if reqMsg != nil {
			answers = reqMsg.Kind
		}
		o := base
		o.Direction = decode.DirResponse
		p.observe(rb, decode.Hint{ContentType: resp.Header.Get("Content-Type"), Direction: decode.DirResponse, Answers: answers, Pushed: r.Method == http.MethodGet}, o)
	}
	if leg == LegRIDEA && resp.StatusCode == http.StatusOK {
		// The simulated DEA registers its fan-out with the WaitGroup the scenarios wait on only
		// after it has written this response; a little latency keeps that race out of the tests.
		time.Sleep(20 * time.Millisecond)
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(rb)
}

func (p *tap) findings() []decode.Finding {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []decode.Finding
	for _, s := range p.seen {
		out = append(out, s.res.Findings...)
	}
	return out
}

func (p *tap) reset() {
	p.mu.Lock()
	p.seen = nil
	p.mu.Unlock()
}

// simRig is a running simulation behind a tap.
type simRig struct {
	s   *sim.Sim
	tap *tap
	v   *Verifier
}

func startSim(t *testing.T) *simRig { return startSimWith(t, sim.Options{}) }

// startSimWith starts the simulation behind a tap, with the RDP MAC keys handed to the verifier
// as an operator would (--keys).
func startSimWith(t *testing.T, opts sim.Options) *simRig {
	t.Helper()
	p := testPKI(t)
	start := time.Now()
	clock := func() time.Time { return t0.Add(time.Since(start)) }
	tr := NewTrust()
	tr.AddAnchors(p.Roots()...)
	v := New(tr, Options{Clock: clock})
	tp := &tap{t: t, v: v, clock: clock, transport: &http.Transport{Proxy: nil}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: tp}
	go func() { _ = srv.Serve(ln) }()
	opts.PKI, opts.Proxy, opts.Clock = p, "http://"+ln.Addr().String(), clock
	s, err := sim.Start(opts)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	for _, ri := range s.RIs {
		l := ri.DEALink()
		tr.AddMACKey(MACKey{RI: ri.ID(), DEA: l.ID, Key: l.MK, Alg: string(l.Alg)})
	}
	t.Cleanup(func() {
		s.Close()
		srv.Close()
		tp.transport.CloseIdleConnections()
	})
	return &simRig{s: s, tap: tp, v: v}
}

func (r *simRig) run(t *testing.T, names ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []string
	for _, sc := range r.s.Scenarios() {
		for _, n := range names {
			if sc.Name == n {
				if err := r.s.Run(ctx, sc); err != nil {
					errs = append(errs, err.Error())
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// TestSimTrafficClean runs every scenario of the simulated peers through the verifier: correct
// traffic yields no error finding, and nothing is left overdue.
func TestSimTrafficClean(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulated peers")
	}
	r := startSim(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.s.RunOnce(ctx, nil); err != nil {
		t.Fatalf("scenarios: %v", err)
	}
	fs := r.tap.findings()
	if r.tap.decoded < 40 {
		t.Fatalf("only %d DRM messages observed", r.tap.decoded)
	}
	kinds := map[string]int{}
	r.tap.mu.Lock()
	for _, s := range r.tap.seen {
		kinds[s.kind]++
		for _, f := range s.decode {
			if f.Severity == decode.SevError {
				t.Logf("decode error on %s (not verify's): %s %s %s", s.kind, f.Rule, f.Path, f.Message)
			}
		}
	}
	r.tap.mu.Unlock()
	for _, k := range []string{"registrationResponse", "roResponse", "TokenDeliveryResponse", "rdpProxyLeaveUserDomainRequest", "rdpProxyLeaveUserDomainResponse", "drmTrigger", "roapTrigger", "leaveDomainResponse", "tokenConsumptionReport"} {
		if kinds[k] == 0 {
			t.Errorf("no %s observed (kinds %v)", k, kinds)
		}
	}
	for _, f := range fs {
		if f.Severity != decode.SevInfo {
			t.Errorf("%s %s %s: %s", f.Severity, f.Rule, f.Path, f.Message)
		}
	}
	// Signatures and MACs were really checked: without a single NOKEY/NOCONTEXT.
	wantNot(t, fs, "ROAP-SIG-NOKEY")
	wantNot(t, fs, "ROAP-SIG-NOCONTEXT")
	wantNot(t, fs, "GEN-MAC-NOKEY")
	if late := r.v.Tracker().Tick(r.tap.clock().Add(time.Hour)); len(late) > 0 {
		t.Errorf("expectations left unmet: %+v", late)
	}
}

// TestSimHMACSHA256 runs the user-domain leave with HMAC-SHA256 contexts.
func TestSimHMACSHA256(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulated peers")
	}
	r := startSimWith(t, sim.Options{MAC: sim.HMACSHA256})
	if err := r.run(t, sim.ScLeaveUserDomain, sim.ScDEAInitiatedLeave); err != nil {
		t.Fatal(err)
	}
	fs := r.tap.findings()
	clean(t, fs)
	wantNot(t, fs, "GEN-MAC-NOKEY")
	wantNot(t, fs, "GEN-MAC-ALG")
}

// TestSimFaults turns on one fault knob of the simulated peers at a time and expects its rule.
func TestSimFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulated peers")
	}
	cases := []struct {
		name      string
		setup     func(s *sim.Sim)
		scenarios []string
		rule      string
		sev       decode.Severity
		late      bool // reported by Tick after the deadline
	}{
		{"RI bad signature", func(s *sim.Sim) { s.RIs[0].SetFaults(sim.RIFaults{BadSignature: true}) }, []string{sim.ScRO2Pass}, "ROAP-SIG", decode.SevError, false},
		{"RI bad token signature", func(s *sim.Sim) { s.RIs[0].SetFaults(sim.RIFaults{BadSignature: true}) }, []string{sim.ScTokens2Pass}, "XBS-9.2.3-SIG", decode.SevError, false},
		{"RI wrong nonce echo", func(s *sim.Sim) { s.RIs[0].SetFaults(sim.RIFaults{WrongNonceEcho: true}) }, []string{sim.ScRO2Pass}, "ROAP-NONCE-ECHO", decode.SevError, false},
		{"RI wrong token nonce echo", func(s *sim.Sim) { s.RIs[0].SetFaults(sim.RIFaults{WrongNonceEcho: true}) }, []string{sim.ScTokens2Pass}, "XBS-9.2.3-NONCE-ECHO", decode.SevError, false},
		{"RI wrong device", func(s *sim.Sim) { s.RIs[0].SetFaults(sim.RIFaults{WrongDeviceID: true}) }, []string{sim.ScTokens2Pass}, "XBS-9.2.3-DEVICEID-ECHO", decode.SevError, false},
		{"RI replays a tokenDeliveryID", func(s *sim.Sim) { s.RIs[0].SetFaults(sim.RIFaults{ReplayTokenDeliveryID: true}) }, []string{sim.ScTokens2Pass, sim.ScTokens2Pass}, "XBS-9.2.3-TDID-REPLAY", decode.SevError, false},
		{"RI stale OCSP", func(s *sim.Sim) { s.RIs[0].SetFaults(sim.RIFaults{StaleOCSP: true}) }, []string{sim.ScRegister}, "OCSP-STALE", decode.SevError, false},
		{"RI without OCSP at registration", func(s *sim.Sim) { s.RIs[0].SetFaults(sim.RIFaults{NoOCSP: true}) }, []string{sim.ScRegister}, "OCSP-MISSING", decode.SevError, false},
		{"RI without OCSP in tokens", func(s *sim.Sim) { s.RIs[0].SetFaults(sim.RIFaults{NoOCSP: true}) }, []string{sim.ScTokens2Pass}, "XBS-9.2.3-OCSP-NOOCSP-XREG", decode.SevError, false},
		{"revoked RI certificate", func(s *sim.Sim) { s.OCSP.Revoke(s.PKI.RIs[0].Cert.SerialNumber, t0.Add(-time.Hour)) }, []string{sim.ScRegister}, "OCSP-REVOKED", decode.SevError, false},
		{"OCSP nonce mismatch", func(s *sim.Sim) { s.OCSP.SetFaults(sim.OCSPFaults{WrongNonce: true}) }, []string{sim.ScRegister}, "OCSP-NONCE", decode.SevError, false},
		{"RI re-serializes the embedded request", func(s *sim.Sim) { s.RIs[0].SetFaults(sim.RIFaults{ModifyEmbeddedLDR: true}) }, []string{sim.ScLeaveUserDomain}, "DOM-7.5.2-LDR-VERBATIM", decode.SevError, false},
		{"RI forwards Success for a DEA failure", func(s *sim.Sim) {
			s.DEA.SetFaults(sim.DEAFaults{WrongStatus: "InvalidDomain"})
			s.RIs[0].SetFaults(sim.RIFaults{ForwardWrongStatus: true})
		}, []string{sim.ScLeaveUserDomain}, "DOM-7.5.3.2-STATUS-ECHO", decode.SevError, false},
		{"RI echoes another domain", func(s *sim.Sim) { s.RIs[0].SetFaults(sim.RIFaults{WrongDomainEcho: true}) }, []string{sim.ScLeaveUserDomain}, "DOM-7.5.3.2-DOMAIN-ECHO", decode.SevError, false},
		{"DEA answers SignatureError to a good request", func(s *sim.Sim) { s.DEA.SetFaults(sim.DEAFaults{WrongStatus: "SignatureError"}) }, []string{sim.ScLeaveUserDomain}, "DOM-7.5.2-EXPECTED-STATUS", decode.SevWarning, false},
		{"DEA skips the fan-out", func(s *sim.Sim) { s.DEA.SetFaults(sim.DEAFaults{SkipFanout: true}) }, []string{sim.ScLeaveUserDomain}, "DOM-7.5-FANOUT", decode.SevWarning, true},
		{"RI does not trigger the devices", func(s *sim.Sim) { s.RIs[0].SetFaults(sim.RIFaults{SkipLeaveTrigger: true}) }, []string{sim.ScDEAInitiatedLeave}, "DOM-7.6.2-ROAP-TRIGGER-FOLLOWS", decode.SevWarning, true},
		{"agent answers a trigger with another nonce", func(s *sim.Sim) { s.Agents[0].SetFaults(sim.AgentFaults{WrongNonce: true}) }, []string{sim.ScLeaveDeviceDomain}, "ROAP-LDREQ-TRIGGERNONCE", decode.SevWarning, false},
		{"DEA bad MAC", func(s *sim.Sim) { s.DEA.SetFaults(sim.DEAFaults{BadMAC: true}) }, []string{sim.ScLeaveUserDomain}, "GEN-MAC-SCOPE", decode.SevError, false},
		{"DEA bad trigger MAC", func(s *sim.Sim) { s.DEA.SetFaults(sim.DEAFaults{BadMAC: true}) }, []string{sim.ScDEAInitiatedLeave}, "DOM-7.6.1-MAC", decode.SevError, false},
		{"agent bad signature", func(s *sim.Sim) { s.Agents[0].SetFaults(sim.AgentFaults{BadSignature: true}) }, []string{sim.ScJoinDomain}, "ROAP-SIG", decode.SevError, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := startSim(t)
			// Set the stage without faults (registration, memberships) so the fault hits the run.
			if err := r.run(t, sim.ScRegister); err != nil {
				t.Fatalf("setup: %v", err)
			}
			noErrors(t, r.tap.findings())
			r.tap.reset()
			c.setup(r.s)
			err := r.run(t, c.scenarios...)
			fs := r.tap.findings()
			if c.late {
				for _, p := range r.v.Tracker().Tick(r.tap.clock().Add(time.Hour)) {
					fs = append(fs, p.Finding)
				}
			}
			if find(fs, c.rule) == nil {
				t.Logf("scenario error: %v", err)
			}
			want(t, fs, c.rule, c.sev)
		})
	}
}
