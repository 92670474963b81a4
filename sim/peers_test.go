package sim

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/decode"
)

// One PKI for every peer test in this binary: key generation is the slow part. 1024-bit keys
// and SHA-1 certificate signatures, as fielded DRM PKIs have them.
var (
	simPeersPKIOnce sync.Once
	simPeersPKIVal  *PKI
	simPeersPKIErr  error
)

func simPeersPKI(tb testing.TB) *PKI {
	tb.Helper()
	simPeersPKIOnce.Do(func() {
		simPeersPKIVal, simPeersPKIErr = NewPKI(PKIOptions{Bits: 1024, SHA1: true})
	})
	if simPeersPKIErr != nil {
		tb.Fatal(simPeersPKIErr)
	}
	return simPeersPKIVal
}

// startSim starts a simulation on the shared PKI and stops it when the test ends.
func startSim(tb testing.TB, opts Options) *Sim {
	tb.Helper()
	opts.PKI = simPeersPKI(tb)
	s, err := Start(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// exchangeLog collects exchanges concurrently.
type exchangeLog struct {
	mu  sync.Mutex
	all []Exchange
}

func (l *exchangeLog) add(ex Exchange) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, ex)
}

func (l *exchangeLog) list() []Exchange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Exchange(nil), l.all...)
}

// answers maps a request kind to the kind of its response.
var answers = map[string]string{
	"deviceHello":                    "riHello",
	"registrationRequest":            "registrationResponse",
	"roRequest":                      "roResponse",
	"joinDomainRequest":              "joinDomainResponse",
	"leaveDomainRequest":             "leaveDomainResponse",
	"tokenRequest":                   "TokenDeliveryResponse",
	"tokenConsumptionReport":         "TokenDeliveryResponse",
	"rdpProxyLeaveUserDomainRequest": "rdpProxyLeaveUserDomainResponse",
	"meteringReportSubmit":           "meteringReportResponse",
	"drmTrigger":                     "",
}

// decodedExchange is an exchange with both bodies decoded the way a proxy would.
type decodedExchange struct {
	Exchange
	req, resp *decode.Message
}

func decodeExchange(ex Exchange) decodedExchange {
	de := decodedExchange{Exchange: ex}
	if len(ex.Request) > 0 {
		de.req = decode.Decode(ex.Request, decode.Hint{ContentType: ex.RequestType, Direction: decode.DirRequest})
	}
	if len(ex.Response) > 0 {
		h := decode.Hint{ContentType: ex.ResponseType, Direction: decode.DirResponse}
		if de.req != nil {
			h.Answers = de.req.Kind
		} else {
			h.Pushed = true // GET /push: the body reaches the device with no request before it
		}
		de.resp = decode.Decode(ex.Response, h)
	}
	return de
}

func errorFindings(m *decode.Message) []decode.Finding {
	var out []decode.Finding
	for _, f := range m.Findings {
		if f.Severity == decode.SevError {
			out = append(out, f)
		}
	}
	for _, n := range m.Nested {
		out = append(out, errorFindings(n)...)
	}
	return out
}

// TestSimScenariosEndToEnd runs every scenario over real HTTP on loopback and decodes every
// message exchanged: each must decode to the kind its position implies, with no error finding.
func TestSimScenariosEndToEnd(t *testing.T) {
	s := startSim(t, Options{})
	var log exchangeLog
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.RunOnce(ctx, log.add); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	legs := map[string]int{}
	for _, ex := range log.list() {
		legs[ex.Leg]++
		if ex.Err != nil {
			t.Errorf("%s %s %s: %v", ex.Scenario, ex.Method, ex.URL, ex.Err)
			continue
		}
		if ex.Leg == LegRIOCSP || ex.Leg == LegDEAOCSP {
			if ex.RequestType != CTOCSPReq || ex.ResponseType != CTOCSPRes || len(ex.Response) == 0 {
				t.Errorf("%s: OCSP exchange %q → %q (%d bytes)", ex.Scenario, ex.RequestType, ex.ResponseType, len(ex.Response))
			}
			continue
		}
		de := decodeExchange(ex)
		for _, m := range []*decode.Message{de.req, de.resp} {
			if m == nil {
				continue
			}
			seen[m.Kind]++
			if m.Variant != "" {
				seen[m.Kind+"/"+m.Variant]++
			}
			if m.Kind == "unknown" {
				t.Errorf("%s %s %s: a body decodes to kind unknown (%s): %s", ex.Scenario, ex.Leg, ex.URL, m.Reason, clipText(m.Raw, 300))
			}
			for _, f := range errorFindings(m) {
				t.Errorf("%s %s %s: %s: error finding %s at %s: %s", ex.Scenario, ex.Leg, ex.URL, m.Kind, f.Rule, f.Path, f.Message)
			}
		}
		if de.req != nil {
			want, ok := answers[de.req.Kind]
			if !ok {
				t.Errorf("%s: unexpected request kind %s", ex.Scenario, de.req.Kind)
			} else if want == "" {
				if ex.Status != 204 || len(ex.Response) != 0 {
					t.Errorf("%s: %s answered HTTP %d with %d bytes; want 204", ex.Scenario, de.req.Kind, ex.Status, len(ex.Response))
				}
			} else if de.resp == nil || de.resp.Kind != want {
				t.Errorf("%s: %s answered by %v; want %s", ex.Scenario, de.req.Kind, kindOf(de.resp), want)
			}
		} else if ex.Method == "GET" && ex.Status == 200 && de.resp == nil {
			t.Errorf("%s: GET /push returned an empty 200", ex.Scenario)
		}
	}
	for _, k := range []string{"deviceHello", "riHello", "registrationRequest", "registrationResponse", "roRequest",
		"roResponse", "joinDomainRequest", "joinDomainResponse", "leaveDomainRequest", "leaveDomainResponse",
		"tokenRequest", "tokenConsumptionReport", "TokenDeliveryResponse", "rdpProxyLeaveUserDomainRequest",
		"rdpProxyLeaveUserDomainResponse", "drmTrigger", "meteringReportSubmit", "meteringReportResponse"} {
		if seen[k] == 0 {
			t.Errorf("no %s was exchanged", k)
		}
	}
	var triggers []string
	for k := range seen {
		if strings.HasPrefix(k, "roapTrigger/") {
			triggers = append(triggers, k)
		}
	}
	if len(triggers) < 5 {
		t.Errorf("trigger variants seen: %v; want registrationRequest, roAcquisition, joinDomain, leaveDomain and the extended leave", triggers)
	}
	for _, leg := range []string{LegDeviceRI, LegRIDEA, LegRIOCSP, LegDEARI, LegDEAOCSP} {
		if legs[leg] == 0 {
			t.Errorf("no exchange on leg %s", leg)
		}
	}
	t.Logf("kinds seen: %v", seen)
}

func kindOf(m *decode.Message) string {
	if m == nil {
		return "nothing"
	}
	return m.Kind
}

// TestSimScenariosIndividually runs each scenario alone on a fresh simulation, twice: each must
// set up what it needs and leave a state in which it can run again.
func TestSimScenariosIndividually(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every scenario on its own simulation")
	}
	for _, sc := range startSim(t, Options{}).Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			s := startSim(t, Options{})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for _, run := range s.Scenarios() {
				if run.Name != sc.Name {
					continue
				}
				for i := 0; i < 2; i++ {
					if err := s.Run(ctx, run); err != nil {
						t.Fatalf("run %d: %v", i+1, err)
					}
				}
			}
		})
	}
}

// TestSimLegsAndProxy sends all traffic through a recording HTTP proxy and checks every leg
// passed through it.
func TestSimLegsAndProxy(t *testing.T) {
	p := newForwardProxy(t)
	s := startSim(t, Options{Proxy: p.url})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{ScLeaveUserDomain, ScTokens2Pass} {
		for _, sc := range s.Scenarios() {
			if sc.Name == name {
				if err := s.Run(ctx, sc); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	hosts := p.hosts()
	for _, peer := range []string{RIName(1), RIName(2), PeerDEA, PeerOCSP} {
		if hosts[hostOf(s.URL(peer))] == 0 {
			t.Errorf("no request to %s (%s) went through the proxy; saw %v", peer, s.URL(peer), hosts)
		}
	}
}

// TestSimReverseFronts puts reverse proxies in front of RI 1, the DEA and the OCSP responder:
// the peers must advertise and use the fronts, so every request to those peers passes them.
func TestSimReverseFronts(t *testing.T) {
	s := startSim(t, Options{})
	counts := map[string]*int{}
	var mu sync.Mutex
	for _, peer := range []string{RIName(1), PeerDEA, PeerOCSP} {
		target, err := url.Parse(s.URL(peer))
		if err != nil {
			t.Fatal(err)
		}
		rp := httputil.NewSingleHostReverseProxy(target)
		n := new(int)
		counts[peer] = n
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			*n++
			mu.Unlock()
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(front.Close)
		if err := s.SetFront(peer, front.URL); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetFront("nobody", "http://127.0.0.1:1"); err == nil {
		t.Error("SetFront accepted an unknown peer")
	}
	var log exchangeLog
	s.Observe(log.add)
	ctx := context.Background()
	for _, sc := range s.Scenarios() {
		if sc.Name == ScRegister || sc.Name == ScLeaveUserDomain {
			if err := s.Run(ctx, sc); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.Observe(nil)
	mu.Lock()
	defer mu.Unlock()
	for peer, n := range counts {
		if *n == 0 {
			t.Errorf("nothing went through the front of %s", peer)
		}
	}
	for _, ex := range log.list() {
		for _, peer := range []string{RIName(1), PeerDEA, PeerOCSP} {
			if strings.HasPrefix(ex.URL, s.URL(peer)) {
				t.Errorf("%s went straight to %s, past its front", ex.URL, peer)
			}
		}
		if bytes.Contains(ex.Response, []byte(s.URL(RIName(1)))) {
			t.Errorf("a message advertises RI 1's own listener instead of its front: %.200s", ex.Response)
		}
	}
}

// TestPeerRIFaults: each RI fault is noticed by a correct agent.
func TestPeerRIFaults(t *testing.T) {
	s := startSim(t, Options{})
	ctx := context.Background()
	a, ri := s.Agents[0], s.RIs[0]
	base := ri.PublicURL()
	if _, err := a.Register(ctx, base); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		faults RIFaults
		run    func() error
		want   string
	}{
		{"BadSignature", RIFaults{BadSignature: true}, func() error { _, err := a.AcquireRO(ctx, base, []string{"RO-x"}); return err }, "signature does not verify"},
		{"WrongNonceEcho", RIFaults{WrongNonceEcho: true}, func() error { _, err := a.AcquireRO(ctx, base, []string{"RO-x"}); return err }, "does not echo"},
		{"WrongDeviceID", RIFaults{WrongDeviceID: true}, func() error { _, err := a.RequestTokens(ctx, base); return err }, "is not this device"},
		{"StaleOCSP", RIFaults{StaleOCSP: true}, func() error { a.Forget(base); _, err := a.Register(ctx, base); return err }, "stale"},
		{"NoOCSP", RIFaults{NoOCSP: true}, func() error { a.Forget(base); _, err := a.Register(ctx, base); return err }, "no OCSP response"},
		{"ReplayTokenDeliveryID", RIFaults{ReplayTokenDeliveryID: true}, func() error { _, err := a.RequestTokens(ctx, base); return err }, "replays tokenDeliveryID"},
		{"WrongDomainEcho", RIFaults{WrongDomainEcho: true}, func() error {
			if err := a.JoinDomain(ctx, base, DeviceDomain1); err != nil {
				return err
			}
			return a.LeaveDomain(ctx, base, DeviceDomain1)
		}, "domainID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A clean delivery first, so the replay fault has something to replay.
			if _, err := a.RequestTokens(ctx, base); err != nil {
				t.Fatal(err)
			}
			ri.SetFaults(c.faults)
			err := c.run()
			ri.SetFaults(RIFaults{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v; want an error mentioning %q", err, c.want)
			}
			if _, err := a.Register(ctx, base); err != nil {
				t.Fatalf("the pair does not recover: %v", err)
			}
		})
	}
}

// TestPeerAgentFaults: each agent fault is answered by the RI with the status ROAP names.
func TestPeerAgentFaults(t *testing.T) {
	s := startSim(t, Options{})
	ctx := context.Background()
	a, ri := s.Agents[0], s.RIs[0]
	base := ri.PublicURL()
	if _, err := a.Register(ctx, base); err != nil {
		t.Fatal(err)
	}
	a.SetFaults(AgentFaults{BadSignature: true})
	_, err := a.AcquireRO(ctx, base, []string{"RO-a"})
	if !IsStatus(err, StatusSignatureError) {
		t.Errorf("bad signature: %v", err)
	}
	_, err = a.RequestTokens(ctx, base)
	if !IsStatus(err, StatusSignatureError) {
		t.Errorf("bad token request signature: %v", err)
	}
	a.SetFaults(AgentFaults{StaleTime: true})
	if err := a.JoinDomain(ctx, base, DeviceDomain1); !IsStatus(err, StatusDeviceTimeError) {
		t.Errorf("stale time: %v", err)
	}
	a.SetFaults(AgentFaults{})
	if _, err := a.AcquireRO(ctx, base, []string{"RO-unknown", "NOPE"}); !IsStatus(err, StatusNotFound) {
		t.Errorf("unknown RO: %v", err)
	}
	// A device the RI has never seen cannot leave out its chain at registration.
	b := s.Agents[1]
	b.SetFaults(AgentFaults{OmitChain: true})
	if _, err := b.Register(ctx, base); !IsStatus(err, StatusNoChain) {
		t.Errorf("omitted chain: %v", err)
	}
	b.SetFaults(AgentFaults{})
	// A wrong triggerNonce is the verifier's business; the RI still serves the request.
	a.SetFaults(AgentFaults{WrongNonce: true})
	ri.Trigger(a.ID(), "roAcquisition", "", []string{"RO-t"}, false)
	var log exchangeLog
	s.Observe(log.add)
	if _, err := a.Poll(ctx, base); err != nil {
		t.Fatal(err)
	}
	s.Observe(nil)
	a.SetFaults(AgentFaults{})
	var trig, sent string
	for _, ex := range log.list() {
		if ex.Method == "GET" && len(ex.Response) > 0 {
			trig = textAt(mustParse(t, ex.Response).Find("roAcquisition"), "nonce")
		}
		if ex.Method == "POST" && bytes.Contains(ex.Request, []byte("roap:roRequest")) {
			sent, _ = mustParse(t, ex.Request).Attr("triggerNonce")
		}
	}
	if trig == "" || sent == "" || trig == sent {
		t.Errorf("WrongNonce: trigger nonce %q, request triggerNonce %q", trig, sent)
	}
}

func mustParse(t *testing.T, b []byte) *decode.Node {
	t.Helper()
	n, err := parseMsg(b)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPeerDEAChecks walks the checks of seed 000 §7.5.2 with real requests and statuses.
func TestPeerDEAChecks(t *testing.T) {
	s := startSim(t, Options{})
	ctx := context.Background()
	p := s.PKI
	ri1, ri2 := s.RIs[0], s.RIs[1]
	// Failure answers are messages too: every one exchanged here must decode cleanly.
	var log exchangeLog
	s.Observe(log.add)
	// The two requests this test breaks on purpose (an SCE device's chain; no chain at all).
	expected := map[string]bool{"DOM-7.5.2-DEVCHAIN-KP": true, "DOM-7.5.2-DEVCHAIN-COND": true}
	seenRules := map[string]bool{}
	defer func() {
		s.Observe(nil)
		statuses := map[string]bool{}
		for _, ex := range log.list() {
			if ex.Leg == LegRIOCSP || ex.Leg == LegDEAOCSP {
				continue
			}
			de := decodeExchange(ex)
			for _, m := range []*decode.Message{de.req, de.resp} {
				if m == nil {
					continue
				}
				if m.Status != "" {
					statuses[m.Kind+":"+m.Status] = true
				}
				for _, f := range errorFindings(m) {
					if !expected[f.Rule] {
						t.Errorf("%s: error finding %s at %s: %s", m.Kind, f.Rule, f.Path, f.Message)
					}
					seenRules[f.Rule] = true
				}
			}
		}
		for r := range expected {
			if !seenRules[r] {
				t.Errorf("the deliberately broken request should have raised %s", r)
			}
		}
		for _, want := range []string{"rdpProxyLeaveUserDomainResponse:InvalidCertificateChain", "leaveDomainResponse:SignatureError",
			"rdpProxyLeaveUserDomainResponse:SignatureError", "joinDomainResponse:DomainAccessDenied"} {
			if !statuses[want] {
				t.Errorf("no %s was exchanged (saw %v)", want, statuses)
			}
		}
	}()

	// An SCE DRM Agent's certificate (drmAgent AND sceDrmAgent) may not use the proxied leave.
	sce, err := NewAgent(AgentConfig{Identity: p.SCEDevice, Roots: p.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	if err := sce.JoinDomain(ctx, ri1.PublicURL(), UserDomain); err != nil {
		t.Fatal(err)
	}
	if err := sce.LeaveDomain(ctx, ri1.PublicURL(), UserDomain); !IsStatus(err, StatusInvalidChain) {
		t.Errorf("SCE device leave: %v; want InvalidCertificateChain", err)
	}

	// A revoked device certificate.
	a := s.Agents[0]
	if err := joinUser(ctx, a, ri1); err != nil {
		t.Fatal(err)
	}
	s.OCSP.Revoke(p.Devices[0].Cert.SerialNumber, time.Now().Add(-time.Minute))
	err = a.LeaveDomain(ctx, ri1.PublicURL(), UserDomain)
	s.OCSP.Unrevoke(p.Devices[0].Cert.SerialNumber)
	if !IsStatus(err, StatusInvalidChain) {
		t.Errorf("revoked device leave: %v; want InvalidCertificateChain", err)
	}

	// A bad signature on the embedded request.
	if err := joinUser(ctx, a, ri1); err != nil {
		t.Fatal(err)
	}
	a.SetFaults(AgentFaults{BadSignature: true})
	err = a.LeaveDomain(ctx, ri1.PublicURL(), UserDomain)
	a.SetFaults(AgentFaults{})
	if !IsStatus(err, StatusSignatureError) {
		t.Errorf("bad embedded signature: %v; want SignatureError", err)
	}

	// An unknown user domain, sent straight to the DEA with RI 1's context.
	ldr, err := a.sign(LeaveDomainRequest{DeviceID: a.ID(), RIID: ri1.ID(), Nonce: newNonce(), Time: time.Now(),
		DomainID: "NOSUCHUSERDOM01001", Chain: p.Devices[0].ChainDER()}.Build())
	if err != nil {
		t.Fatal(err)
	}
	st := rdpRoundTrip(t, s, ri1, RDPLeaveRequest{ReqID: ri1.ID(), ResID: s.DEA.ID(), Nonce: newNonce(), LDR: ldr})
	if st != StatusInvalidDomain {
		t.Errorf("unknown domain: DEA said %s; want InvalidDomain", st)
	}
	// No chain anywhere.
	ldr, _ = a.sign(LeaveDomainRequest{DeviceID: a.ID(), RIID: ri1.ID(), Nonce: newNonce(), Time: time.Now(), DomainID: UserDomain}.Build())
	if st := rdpRoundTrip(t, s, ri1, RDPLeaveRequest{ReqID: ri1.ID(), ResID: s.DEA.ID(), Nonce: newNonce(), LDR: ldr}); st != StatusNoChain {
		t.Errorf("no chain: DEA said %s", st)
	}
	// The same request with deviceCertificateChain is fine.
	if st := rdpRoundTrip(t, s, ri1, RDPLeaveRequest{ReqID: ri1.ID(), ResID: s.DEA.ID(), Nonce: newNonce(), LDR: ldr,
		DeviceChain: p.Devices[0].ChainDER()}); st != StatusSuccess {
		t.Errorf("deviceCertificateChain: DEA said %s", st)
	}

	// The DEA refuses a rejoin while a leave is pending at another RI (seed 000 §7.5).
	s.DEA.SetFaults(DEAFaults{})
	if err := joinUser(ctx, a, ri1, ri2); err != nil {
		t.Fatal(err)
	}
	if err := a.LeaveDomain(ctx, ri1.PublicURL(), UserDomain); err != nil {
		t.Fatal(err)
	}
	s.DEA.Wait()
	if got := s.DEA.Pending(UserDomain, a.ID()); len(got) != 1 || got[0] != ri2.ID() {
		t.Errorf("pending leaves %v; want RI 2", got)
	}
	if err := a.JoinDomain(ctx, ri1.PublicURL(), UserDomain); !IsStatus(err, StatusDomainAccessDeny) {
		t.Errorf("rejoin during a pending leave: %v; want DomainAccessDenied", err)
	}
	if err := pollExpect(ctx, a, ri2, 1); err != nil {
		t.Fatal(err)
	}
	if err := checkLeft(s, a); err != nil {
		t.Fatal(err)
	}
	if err := a.JoinDomain(ctx, ri1.PublicURL(), UserDomain); err != nil {
		t.Errorf("rejoin after the leave completed: %v", err)
	}
}

// rdpRoundTrip MACs req with the RI's context key, posts it to the DEA and returns the status
// of the (MAC-checked) response.
func rdpRoundTrip(t *testing.T, s *Sim, ri *RI, req RDPLeaveRequest) string {
	t.Helper()
	msg, err := req.MAC(ri.cfg.DEA.Alg, ri.cfg.DEA.MK, false)
	if err != nil {
		t.Fatal(err)
	}
	_, _, resp, err := post(context.Background(), ri.client, s.URL(PeerDEA)+"/rdp", CTSCE, msg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ri.checkRDPResponse(resp, req.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestPeerDEAFaultsAndRIForwarding: the RI discards a response with a bad MAC and forwards the
// DEA's status (or lies about it when told to); the DEA fans out unless told not to.
func TestPeerDEAFaultsAndRIForwarding(t *testing.T) {
	s := startSim(t, Options{MAC: HMACSHA256})
	ctx := context.Background()
	a := s.Agents[0]
	ri1, ri2 := s.RIs[0], s.RIs[1]

	if err := joinUser(ctx, a, ri1); err != nil {
		t.Fatal(err)
	}
	s.DEA.SetFaults(DEAFaults{BadMAC: true})
	err := a.LeaveDomain(ctx, ri1.PublicURL(), UserDomain)
	if !IsStatus(err, StatusAbort) || !ri1.contains("discarded the DEA response") {
		t.Errorf("bad DEA MAC: %v; RI log %v", err, ri1.Log())
	}
	s.DEA.SetFaults(DEAFaults{WrongStatus: StatusInvalidDomain})
	if err := joinUser(ctx, a, ri1); err != nil {
		t.Fatal(err)
	}
	if err := a.LeaveDomain(ctx, ri1.PublicURL(), UserDomain); !IsStatus(err, StatusInvalidDomain) {
		t.Errorf("DEA status not forwarded: %v", err)
	}
	ri1.SetFaults(RIFaults{ForwardWrongStatus: true})
	if err := joinUser(ctx, a, ri1); err != nil {
		t.Fatal(err)
	}
	if err := a.LeaveDomain(ctx, ri1.PublicURL(), UserDomain); err != nil {
		t.Errorf("ForwardWrongStatus: the device should have been told Success: %v", err)
	}
	ri1.SetFaults(RIFaults{})
	s.DEA.SetFaults(DEAFaults{SkipFanout: true})
	if err := joinUser(ctx, a, ri1, ri2); err != nil {
		t.Fatal(err)
	}
	if err := a.LeaveDomain(ctx, ri1.PublicURL(), UserDomain); err != nil {
		t.Fatal(err)
	}
	s.DEA.Wait()
	if n := ri2.Queued(a.ID()); n != 0 {
		t.Errorf("SkipFanout: RI 2 has %d queued objects", n)
	}
	s.DEA.SetFaults(DEAFaults{})

	// ModifyEmbeddedLDR: the DEA still accepts (the canonical form is unchanged), but the bytes it
	// gets are not the device's.
	ri2.SetFaults(RIFaults{ModifyEmbeddedLDR: true})
	var log exchangeLog
	s.Observe(log.add)
	if err := a.LeaveDomain(ctx, ri2.PublicURL(), UserDomain); err != nil {
		t.Fatal(err)
	}
	s.Observe(nil)
	ri2.SetFaults(RIFaults{})
	var device, embedded []byte
	for _, ex := range log.list() {
		switch ex.Leg {
		case LegDeviceRI:
			device = ex.Request
		case LegRIDEA:
			info := mustParse(t, ex.Request).Find("reqInfo/rdpProxyLeaveUserDomainRequestInformation/leaveDomainRequest")
			embedded, _ = base64.StdEncoding.DecodeString(info.TextContent())
		}
	}
	if len(device) == 0 || len(embedded) == 0 || bytes.Equal(device, embedded) {
		t.Errorf("ModifyEmbeddedLDR: device %d bytes, embedded %d bytes, equal %v", len(device), len(embedded), bytes.Equal(device, embedded))
	}
	if !bytes.HasPrefix(embedded, []byte("<?xml")) {
		t.Errorf("the re-serialized request should start with an XML declaration: %.60s", embedded)
	}
}

// TestPeerLeaveTriggerRouting: RI 1 answers a DEA trigger with a plain leaveDomain trigger, RI 2
// with an extendedTrigger; a trigger with a bad MAC is refused; SkipLeaveTrigger queues nothing.
func TestPeerLeaveTriggerRouting(t *testing.T) {
	s := startSim(t, Options{})
	ctx := context.Background()
	b := s.Agents[1]
	ri1, ri2 := s.RIs[0], s.RIs[1]
	if err := joinUser(ctx, b, ri1, ri2); err != nil {
		t.Fatal(err)
	}
	ri1.SetFaults(RIFaults{SkipLeaveTrigger: true})
	if err := s.DEA.Leave(ctx, UserDomain, []string{b.ID()}); err != nil {
		t.Fatal(err)
	}
	ri1.SetFaults(RIFaults{})
	if n := ri1.Queued(b.ID()); n != 0 {
		t.Errorf("SkipLeaveTrigger: %d queued", n)
	}
	var log exchangeLog
	s.Observe(log.add)
	if err := pollExpect(ctx, b, ri2, 1); err != nil {
		t.Fatal(err)
	}
	s.Observe(nil)
	var sawExtended, sawNoChain bool
	for _, ex := range log.list() {
		if ex.Method == "GET" && bytes.Contains(ex.Response, []byte(`<extendedTrigger`)) && bytes.Contains(ex.Response, []byte(`type="leaveDomain"`)) {
			sawExtended = true
		}
		if ex.Leg == LegRIDEA {
			m := decode.Decode(ex.Request, decode.Hint{ContentType: ex.RequestType, Direction: decode.DirRequest})
			sawNoChain = len(m.Nested) == 1 && m.Nested[0].Kind == "leaveDomainRequest" && len(m.Nested[0].Chains) == 0 && len(m.Chains) == 1
		}
	}
	if !sawExtended {
		t.Error("RI 2 did not send an extendedTrigger of type leaveDomain")
	}
	if !sawNoChain {
		t.Error("the caching device's leave should reach the DEA without a chain in the request and with deviceCertificateChain")
	}

	// A drmTrigger whose MAC fails is refused with 403 and queues nothing.
	msg, err := RDPLeaveTrigger{ID: "t1", ResID: s.DEA.ID(), Nonce: newNonce(), ReqURL: s.URL(PeerDEA) + "/rdp",
		DomainID: UserDomain, DeviceIDs: []string{b.ID()}}.MAC(HMACSHA1, []byte("not the MK"), false)
	if err != nil {
		t.Fatal(err)
	}
	code, _, _, _ := post(ctx, ri1.client, ri1.PublicURL()+"/rdp", CTSCE, msg)
	if code != 403 || ri1.Queued(b.ID()) != 0 {
		t.Errorf("bad trigger MAC: HTTP %d, %d queued", code, ri1.Queued(b.ID()))
	}
}

// forwardProxy is a minimal plain-HTTP forward proxy that counts the hosts it forwards to.
type forwardProxy struct {
	url string
	mu  sync.Mutex
	n   map[string]int
}

func newForwardProxy(t *testing.T) *forwardProxy {
	fp := &forwardProxy{n: map[string]int{}}
	tr := &http.Transport{Proxy: nil}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		fp.mu.Lock()
		fp.n[r.URL.Host]++
		fp.mu.Unlock()
		out := r.Clone(r.Context())
		out.RequestURI = ""
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(tr.CloseIdleConnections)
	fp.url = srv.URL
	return fp
}

func (fp *forwardProxy) hosts() map[string]int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	out := map[string]int{}
	for k, v := range fp.n {
		out[k] = v
	}
	return out
}

// TestPeerHostileInput posts malformed and half-formed bodies to every endpoint: each must be
// answered (no handler panic, which net/http would turn into a dropped connection), and never
// with a server error.
func TestPeerHostileInput(t *testing.T) {
	s := startSim(t, Options{})
	ri := s.RIs[0]
	ctx := context.Background()
	if _, err := s.Agents[0].Register(ctx, ri.PublicURL()); err != nil {
		t.Fatal(err)
	}
	id := Identifier("reqID", ri.ID())
	bodies := [][]byte{nil, []byte("junk"), []byte("<a>"), []byte(`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>`)}
	for _, k := range []string{"deviceHello", "registrationRequest", "roRequest", "joinDomainRequest", "leaveDomainRequest",
		"meteringReportSubmit", "tokenRequest", "tokenConsumptionReport", "roapTrigger", "nonsense"} {
		bodies = append(bodies, roapRoot(k).Bytes(),
			roapRoot(k, decode.A("sessionId", "x"), Identifier("deviceID", s.Agents[0].ID()), Identifier("riID", ri.ID()),
				decode.El("domainID", UserDomain), decode.El("certificateChain", decode.El("certificate", "AAAA")), decode.El("signature", "!!")).Bytes())
	}
	// RDP bodies with a valid MAC but nothing sensible inside.
	for _, inner := range [][]*decode.Node{nil, {decode.El("reqInfo")}, {decode.El("reqInfo", decode.El("dom:rdpProxyLeaveUserDomainRequestInformation",
		decode.El("leaveDomainRequest", b64([]byte("<roap:leaveDomainRequest/>")))))}} {
		n := decode.El("dom:rdpProxyLeaveUserDomainRequest", rdpRootDecls, id.Clone(), Identifier("resID", s.DEA.ID()), inner)
		msg, err := rdpWire(n, ri.cfg.DEA.Alg, ri.cfg.DEA.MK, false)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, msg)
		tr := decode.El("gen:drmTrigger", rdpRootDecls, decode.A("type", rdpLeaveTriggerType), Identifier("resID", s.DEA.ID()), inner)
		if msg, err = rdpWire(tr, ri.cfg.DEA.Alg, ri.cfg.DEA.MK, false); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, msg)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	targets := []string{ri.PublicURL() + "/roap", ri.PublicURL() + "/token", ri.PublicURL() + "/token-report",
		ri.PublicURL() + "/rdp", s.URL(PeerDEA) + "/rdp"}
	for _, u := range targets {
		for _, b := range bodies {
			resp, err := client.Post(u, CTROAP, bytes.NewReader(b))
			if err != nil {
				t.Fatalf("POST %s %.60q: %v", u, b, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				t.Errorf("POST %s %.80q: HTTP %d", u, b, resp.StatusCode)
			}
		}
	}
	// The peers still work afterwards.
	if _, err := s.Agents[0].AcquireRO(ctx, ri.PublicURL(), []string{"RO-after"}); err != nil {
		t.Error(err)
	}
}
