package verify

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/sim"
)

// flow feeds observations to a verifier the way the proxy would: request and response of one
// HTTP exchange share an exchange ID, and the response is decoded knowing what it answers.
type flow struct {
	t    *testing.T
	v    *Verifier
	now  time.Time
	kind map[string]string // exchange -> request kind
	// recycle hands every message's tree back (decode.Recycle) as soon as it was tracked: what
	// the tracker still needs it must hold.
	recycle bool
}

func newFlow(t *testing.T, v *Verifier) *flow {
	return &flow{t: t, v: v, now: t0, kind: map[string]string{}}
}

func (f *flow) tick() time.Time {
	f.now = f.now.Add(time.Second)
	return f.now
}

// req observes a request body; leg and server may be empty.
func (f *flow) req(ex string, leg Leg, server string, body []byte) (*decode.Message, Result) {
	m := decode.Decode(body, decode.Hint{Direction: decode.DirRequest})
	f.kind[ex] = m.Kind
	res := f.v.Track(Observation{Message: m, Time: f.tick(), Leg: leg, Direction: decode.DirRequest, Exchange: ex, Server: server})
	f.done(m)
	return m, res
}

func (f *flow) done(m *decode.Message) {
	if f.recycle {
		decode.Recycle(m)
	}
}

// resp observes a response body on exchange ex.
func (f *flow) resp(ex string, leg Leg, server string, body []byte) (*decode.Message, Result) {
	m := decode.Decode(body, decode.Hint{Direction: decode.DirResponse, Answers: f.kind[ex]})
	res := f.v.Track(Observation{Message: m, Time: f.tick(), Leg: leg, Direction: decode.DirResponse, Exchange: ex, Server: server})
	f.done(m)
	return m, res
}

// push observes a body delivered without a request (GET /push).
func (f *flow) push(ex, url string, body []byte) (*decode.Message, Result) {
	m := decode.Decode(body, decode.Hint{Direction: decode.DirResponse, Pushed: true})
	return m, f.v.Track(Observation{Message: m, Time: f.tick(), Leg: LegDeviceRI, Direction: decode.DirResponse, Exchange: ex, URL: url})
}

// ---- registration ----

type registration struct {
	hello, riHello, regReq, regResp []byte
	nonce                           []byte
}

// register builds a consistent 4-pass registration of dev with ri.
func register(t *testing.T, p *sim.PKI, dev, ri *sim.Identity, sid string, opts func(r *regOpts)) registration {
	t.Helper()
	o := regOpts{sid: sid, respSid: sid, ocspNonce: []byte("device-nonce-0123456789abcdef01")}
	o.nonce = o.ocspNonce
	if opts != nil {
		opts(&o)
	}
	var r registration
	r.nonce = o.nonce
	r.hello = roapRoot("deviceHello", decode.El("version", "1.0"), ident("deviceID", dev.ID())).Bytes()
	r.riHello = roapRoot("riHello", decode.A("status", "Success"), decode.A("sessionId", sid), decode.El("selectedVersion", "1.0"),
		ident("riID", ri.ID()), decode.El("riNonce", nonce("rinonce"))).Bytes()
	var exts *decode.Node
	if o.noOCSP {
		exts = decode.El("extensions", ext("NoOCSPResponse"))
	}
	req := roapRoot("registrationRequest", decode.A("sessionId", o.reqSid()), decode.El("nonce", b64s(o.nonce)),
		decode.El("time", t0.Format("2006-01-02T15:04:05Z")), chainEl("certificateChain", dev), exts)
	if o.signReqAlone {
		r.regReq = sign(t, req, dev.Key, signPSS20)
	} else {
		r.regReq = sign(t, req, dev.Key, signPSS20, r.hello, r.riHello)
	}
	var ocsp *decode.Node
	if !o.omitOCSP {
		der, err := responder(p).Respond(ri.Cert, o.ocspNonce)
		if err != nil {
			t.Fatal(err)
		}
		ocsp = decode.El("ocspResponse", b64s(der))
	}
	resp := roapRoot("registrationResponse", decode.A("status", "Success"), decode.A("sessionId", o.respSid),
		decode.El("riURL", "https://ri.example/roap"), chainEl("certificateChain", ri), ocsp)
	r.regResp = sign(t, resp, ri.Key, signPSS20, r.regReq)
	return r
}

type regOpts struct {
	sid, reqSidOverride, respSid string
	nonce, ocspNonce             []byte
	noOCSP, omitOCSP             bool
	signReqAlone                 bool
}

func (o regOpts) reqSid() string {
	if o.reqSidOverride != "" {
		return o.reqSidOverride
	}
	return o.sid
}

func (f *flow) registration(r registration, exHello, exReg string) []decode.Finding {
	var all []decode.Finding
	_, res := f.req(exHello, LegDeviceRI, "ri1:80", r.hello)
	all = append(all, res.Findings...)
	_, res = f.resp(exHello, LegDeviceRI, "ri1:80", r.riHello)
	all = append(all, res.Findings...)
	_, res = f.req(exReg, LegDeviceRI, "ri1:80", r.regReq)
	all = append(all, res.Findings...)
	_, res = f.resp(exReg, LegDeviceRI, "ri1:80", r.regResp)
	return append(all, res.Findings...)
}

func TestRegistration(t *testing.T) {
	p := testPKI(t)
	dev, ri := p.Devices[0], p.RIs[0]

	t.Run("good", func(t *testing.T) {
		f := newFlow(t, newVerifier(p))
		fs := f.registration(register(t, p, dev, ri, "S1", nil), "h", "r")
		clean(t, fs)
		wantNot(t, fs, "ROAP-SIG-NOCONTEXT")
	})
	t.Run("nonce in OCSP raw, not wrapped", func(t *testing.T) {
		// Symbian accepts the raw value too; the sim wraps it in an OCTET STRING, so test the
		// raw form through nonceMatches directly.
		n := []byte("device-nonce")
		if !nonceMatches(n, n) || !nonceMatches(append([]byte{0x04, byte(len(n))}, n...), n) || nonceMatches([]byte("other"), n) {
			t.Fatal("nonceMatches")
		}
	})
	cases := []struct {
		name string
		opt  func(o *regOpts)
		rule string
		sev  decode.Severity
	}{
		{"OCSP nonce differs from the device nonce", func(o *regOpts) { o.ocspNonce = []byte("another-nonce-0123456789abcdef0") }, "OCSP-NONCE", decode.SevError},
		{"OCSP without nonce", func(o *regOpts) { o.ocspNonce = nil }, "OCSP-NONCE", decode.SevWarning},
		{"registrationRequest with another sessionId", func(o *regOpts) { o.reqSidOverride = "S-other" }, "ROAP-REG-SESSION", decode.SevError},
		{"registrationResponse with another sessionId", func(o *regOpts) { o.respSid = "S-other" }, "ROAP-REG-SESSION", decode.SevError},
		{"no OCSP although not asked", func(o *regOpts) { o.omitOCSP = true }, "OCSP-MISSING", decode.SevError},
		{"signature over the request alone", func(o *regOpts) { o.signReqAlone = true }, "ROAP-SIG", decode.SevError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFlow(t, newVerifier(p))
			fs := f.registration(register(t, p, dev, ri, "S1", c.opt), "h", "r")
			want(t, fs, c.rule, c.sev)
		})
	}
	t.Run("NoOCSPResponse honoured", func(t *testing.T) {
		f := newFlow(t, newVerifier(p))
		fs := f.registration(register(t, p, dev, ri, "S1", func(o *regOpts) { o.noOCSP, o.omitOCSP = true, true }), "h", "r")
		clean(t, fs)
	})
	t.Run("hellos not captured", func(t *testing.T) {
		f := newFlow(t, newVerifier(p))
		r := register(t, p, dev, ri, "S1", nil)
		_, res := f.req("r", LegDeviceRI, "", r.regReq)
		want(t, res.Findings, "ROAP-SIG-NOCONTEXT", decode.SevInfo)
		want(t, res.Findings, "ROAP-REG-SESSION", decode.SevInfo)
		noErrors(t, res.Findings)
		_, res = f.resp("r", LegDeviceRI, "", r.regResp)
		clean(t, res.Findings) // the request was captured: the response verifies
		if res.Correlation != "reg:S1" {
			t.Fatalf("correlation %q", res.Correlation)
		}
	})
}

// ---- tokens ----

// registered runs a registration so the tracker knows the device's NoOCSPResponse choice.
func registered(t *testing.T, f *flow, p *sim.PKI, dev, ri *sim.Identity, noOCSP bool) {
	t.Helper()
	r := register(t, p, dev, ri, "S-"+dev.Name, func(o *regOpts) { o.noOCSP, o.omitOCSP = noOCSP, noOCSP })
	clean(t, f.registration(r, "h-"+dev.Name, "r-"+dev.Name))
}

func TestTokens(t *testing.T) {
	p := testPKI(t)
	dev, ri := p.Devices[0], p.RIs[0]
	ocspDER, err := responder(p).Respond(ri.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := func(n, tdid string) tdr {
		return tdr{ri: ri, dev: dev.ID(), tdid: tdid, nonce: n, qty: 5, ocsp: [][]byte{ocspDER}}
	}
	twoPass := func(f *flow, ex string, reqBody []byte, s tdr) Result {
		f.req(ex, LegDeviceRI, "ri1:80", reqBody)
		_, res := f.resp(ex, LegDeviceRI, "ri1:80", s.build(t, signPSS20))
		return res
	}

	t.Run("good 2-pass, report, ack", func(t *testing.T) {
		f := newFlow(t, newVerifier(p))
		registered(t, f, p, dev, ri, false)
		n1 := nonce("a")
		res := twoPass(f, "e1", tokenRequest(t, dev, ri.ID(), n1, "td-1", ""), base(n1, "td-1"))
		clean(t, res.Findings)
		if res.Correlation != "token:"+dev.ID()+":"+n1 {
			t.Fatalf("correlation %q", res.Correlation)
		}
		n2 := nonce("b")
		ack := base(n2, "td-2")
		ack.qty = 0
		clean(t, twoPass(f, "e2", tokenReport(t, dev, ri.ID(), n2, "td-1"), ack).Findings)
	})
	cases := []struct {
		name string
		req  func(n string) []byte
		resp func(n string) tdr
		rule string
		sev  decode.Severity
	}{
		{"wrong nonce echo", func(n string) []byte { return tokenRequest(t, dev, ri.ID(), n, "td-x", "") },
			func(n string) tdr { return base(nonce("other"), "td-x") }, "XBS-9.2.3-NONCE-ECHO", decode.SevError},
		{"wrong device", func(n string) []byte { return tokenRequest(t, dev, ri.ID(), n, "td-x", "") },
			func(n string) tdr { s := base(n, "td-x"); s.dev = p.Devices[1].ID(); return s }, "XBS-9.2.3-DEVICEID-ECHO", decode.SevError},
		{"wrong RI", func(n string) []byte { return tokenRequest(t, dev, p.RIs[1].ID(), n, "td-x", "") },
			func(n string) tdr { return base(n, "td-x") }, "XBS-9.2.3-RIID-ECHO", decode.SevError},
		{"other tokenDeliveryID", func(n string) []byte { return tokenRequest(t, dev, ri.ID(), n, "td-asked", "") },
			func(n string) tdr { return base(n, "td-given") }, "XBS-9.2.3-TDID-MATCH", decode.SevWarning},
		{"quantity 0 to a request", func(n string) []byte { return tokenRequest(t, dev, ri.ID(), n, "td-x", "") },
			func(n string) tdr { s := base(n, "td-x"); s.qty = 0; return s }, "XBS-9.2.3-QTY-ZERO-CONTEXT", decode.SevWarning},
		{"report error to a request", func(n string) []byte { return tokenRequest(t, dev, ri.ID(), n, "td-x", "") },
			func(n string) tdr { return tdr{status: "TokenConsumptionReportError"} }, "XBS-9.2.3-REPORTERR-CONTEXT", decode.SevWarning},
		{"no chain and no PeerKeyIdentifier", func(n string) []byte { return tokenRequest(t, dev, ri.ID(), n, "td-x", "") },
			func(n string) tdr { s := base(n, "td-x"); s.noChain = true; return s }, "XBS-9.2.3-CERTCHAIN-COND", decode.SevError},
		{"no OCSP without NoOCSPResponse", func(n string) []byte { return tokenRequest(t, dev, ri.ID(), n, "td-x", "") },
			func(n string) tdr { s := base(n, "td-x"); s.ocsp = nil; return s }, "XBS-9.2.3-OCSP-NOOCSP-XREG", decode.SevError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFlow(t, newVerifier(p))
			registered(t, f, p, dev, ri, false)
			n := nonce(c.name)
			res := twoPass(f, "e1", c.req(n), c.resp(n))
			want(t, res.Findings, c.rule, c.sev)
		})
	}
	t.Run("report error answering a report", func(t *testing.T) {
		f := newFlow(t, newVerifier(p))
		res := twoPass(f, "e1", tokenReport(t, dev, ri.ID(), nonce("r"), "td-1"), tdr{status: "TokenConsumptionReportError"})
		clean(t, res.Findings)
	})
	t.Run("chain left out for a PeerKeyIdentifier naming the RI", func(t *testing.T) {
		f := newFlow(t, newVerifier(p))
		registered(t, f, p, dev, ri, false)
		n := nonce("pk")
		s := base(n, "td-pk")
		s.noChain = true
		res := twoPass(f, "e1", tokenRequest(t, dev, ri.ID(), n, "td-pk", ri.ID()), s)
		clean(t, res.Findings) // the RI chain is cached from registration
	})
	t.Run("NoOCSPResponse honoured", func(t *testing.T) {
		f := newFlow(t, newVerifier(p))
		registered(t, f, p, dev, ri, true)
		n := nonce("no")
		s := base(n, "td-no")
		s.ocsp = nil
		clean(t, twoPass(f, "e1", tokenRequest(t, dev, ri.ID(), n, "td-no", ""), s).Findings)
	})
	t.Run("replayed tokenDeliveryID", func(t *testing.T) {
		f := newFlow(t, newVerifier(p))
		registered(t, f, p, dev, ri, false)
		n1, n2 := nonce("r1"), nonce("r2")
		clean(t, twoPass(f, "e1", tokenRequest(t, dev, ri.ID(), n1, "td-same", ""), base(n1, "td-same")).Findings)
		res := twoPass(f, "e2", tokenRequest(t, dev, ri.ID(), n2, "td-same", ""), base(n2, "td-same"))
		want(t, res.Findings, "XBS-9.2.3-TDID-REPLAY", decode.SevError)
		// The same ID to another device is no replay.
		other := base(n2, "td-same")
		other.dev = p.Devices[1].ID()
		f.req("e3", LegDeviceRI, "ri1:80", tokenRequest(t, p.Devices[1], ri.ID(), n2, "td-same", ""))
		_, res = f.resp("e3", LegDeviceRI, "ri1:80", other.build(t, signPSS20))
		wantNot(t, res.Findings, "XBS-9.2.3-TDID-REPLAY")
		// A delivery whose signature fails is not remembered, so it cannot make a later genuine one look replayed.
		bad := base(nonce("r4"), "td-forged")
		bad.signer = p.RIs[1]
		f.req("e4", LegDeviceRI, "ri1:80", tokenRequest(t, dev, ri.ID(), nonce("r4"), "td-forged", ""))
		_, res = f.resp("e4", LegDeviceRI, "ri1:80", bad.build(t, signPSS20))
		want(t, res.Findings, "XBS-9.2.3-SIG", decode.SevError)
		_, res = f.push("e5", "http://ri1/push?deviceID="+dev.ID(), tdr{ri: ri, dev: dev.ID(), tdid: "td-forged", qty: 1, ocsp: [][]byte{ocspDER}}.build(t, signPSS20))
		wantNot(t, res.Findings, "XBS-9.2.3-TDID-REPLAY")
	})
	t.Run("1-pass", func(t *testing.T) {
		f := newFlow(t, newVerifier(p))
		registered(t, f, p, dev, ri, false)
		_, res := f.push("p1", "", tdr{ri: ri, dev: dev.ID(), tdid: "td-push", qty: 3, ocsp: [][]byte{ocspDER}}.build(t, signPSS20))
		clean(t, res.Findings)
		if res.Correlation != "token:"+dev.ID()+":td-push" {
			t.Fatalf("correlation %q", res.Correlation)
		}
		// A nonce-carrying delivery with no request on its exchange: decode calls it 2-pass, the
		// exchange says 1-pass.
		m := decode.Decode(tdr{ri: ri, dev: dev.ID(), tdid: "td-n", nonce: nonce("x"), qty: 3, ocsp: [][]byte{ocspDER}}.build(t, signPSS20), decode.Hint{})
		fs := f.v.Observe(Observation{Message: m, Time: f.tick(), Exchange: "lonely", Direction: decode.DirResponse})
		want(t, fs, "XBS-9.2.3-MODE", decode.SevWarning)
	})
}

// ---- triggers ----

func TestTriggerNonce(t *testing.T) {
	p := testPKI(t)
	dev, ri := p.Devices[0], p.RIs[0]
	f := newFlow(t, newVerifier(p))
	tn := nonce("trigger")
	_, res := f.push("t1", "http://ri1/push?deviceID="+dev.ID(), roapTrigger("leaveDomain", ri.ID(), tn, "DOM001"))
	noErrors(t, res.Findings)
	if res.Correlation != "leave:DOM001:"+dev.ID() {
		t.Fatalf("trigger correlation %q", res.Correlation)
	}
	_, res = f.req("l1", LegDeviceRI, "ri1:80", ldr{dev: dev, riID: ri.ID(), nonce: nonce("l1"), domain: "DOM001", triggerNonce: tn}.build(t))
	clean(t, res.Findings)
	if res.Correlation != "leave:DOM001:"+dev.ID() || !contains(res.Joins, "trigger:"+tn) {
		t.Fatalf("request correlation %q joins %v", res.Correlation, res.Joins)
	}
	_, res = f.req("l2", LegDeviceRI, "ri1:80", ldr{dev: dev, riID: ri.ID(), nonce: nonce("l2"), domain: "DOM001", triggerNonce: nonce("wrong")}.build(t))
	want(t, res.Findings, "ROAP-LDREQ-TRIGGERNONCE", decode.SevWarning)
	_, res = f.req("l3", LegDeviceRI, "ri1:80", ldr{dev: dev, riID: p.RIs[1].ID(), nonce: nonce("l3"), domain: "DOM001", triggerNonce: nonce("uncaptured")}.build(t))
	want(t, res.Findings, "ROAP-LDREQ-TRIGGERNONCE", decode.SevInfo)
	// A joinDomain trigger answered by a leave: wrong kind.
	tj := nonce("join-trigger")
	f.push("t2", "", roapTrigger("joinDomain", ri.ID(), tj, "DOM001"))
	_, res = f.req("l4", LegDeviceRI, "ri1:80", ldr{dev: dev, riID: ri.ID(), nonce: nonce("l4"), domain: "DOM001", triggerNonce: tj}.build(t))
	want(t, res.Findings, "ROAP-LDREQ-TRIGGERNONCE", decode.SevWarning)
}

// ---- seed 000 across the two legs ----

type leaveRig struct {
	p         *sim.PKI
	mk        []byte
	riID, dea string
	dev       *sim.Identity
	dom       string
}

func newLeaveRig(t *testing.T) (*leaveRig, *Verifier) {
	p := testPKI(t)
	r := &leaveRig{p: p, mk: []byte("rdp-mac-key-for-test"), riID: p.RIs[0].ID(), dea: p.DEA.ID(), dev: p.Devices[0], dom: sim.UserDomain}
	v := newVerifier(p)
	v.Trust().AddMACKey(MACKey{RI: r.riID, DEA: r.dea, Key: r.mk})
	return r, v
}

// leaveFault changes one message of Flow A.
type leaveFault struct {
	dev          *sim.Identity
	embed        func(b []byte) []byte // what the RI embeds instead of the device's bytes
	reqID        string
	respReqID    string
	respNonce    string
	respDomain   string
	respDevice   string
	deaStatus    string
	badDEAMAC    bool
	roapStatus   string
	roapNonce    string
	roapDomain   string
	answerEarly  bool // the RI answers the device before the DEA answered
	corruptLDSig bool
}

// flowA runs device leaveDomainRequest -> RDP request -> RDP response -> ROAP leaveDomainResponse.
func (r *leaveRig) flowA(t *testing.T, f *flow, tag string, lf leaveFault) (all []decode.Finding, results []Result) {
	t.Helper()
	dev := r.dev
	if lf.dev != nil {
		dev = lf.dev
	}
	dn := nonce("dev-" + tag)
	body := ldr{dev: dev, riID: r.riID, nonce: dn, domain: r.dom}.build(t)
	if lf.corruptLDSig {
		body = bytes.Replace(body, []byte("<time>2025"), []byte("<time>2024"), 1)
	}
	collect := func(m *decode.Message, res Result) {
		all = append(all, m.Findings...)
		all = append(all, res.Findings...)
		results = append(results, res)
	}
	collect(f.req("dev-"+tag, LegDeviceRI, "ri1:80", body))
	embedded := body
	if lf.embed != nil {
		embedded = lf.embed(body)
	}
	reqID := r.riID
	if lf.reqID != "" {
		reqID = lf.reqID
	}
	gn := nonce("gen-" + tag)
	collect(f.req("rdp-"+tag, LegRIDEA, "dea:80", rdpRequest(reqID, r.dea, gn, embedded, nil, r.mk)))
	status := "Success"
	if lf.deaStatus != "" {
		status = lf.deaStatus
	}
	roapStatus := status
	if lf.roapStatus != "" {
		roapStatus = lf.roapStatus
	}
	pick := func(v, def string) string {
		if v != "" {
			return v
		}
		return def
	}
	answer := func() {
		collect(f.resp("dev-"+tag, LegDeviceRI, "ri1:80", leaveResponse(roapStatus, pick(lf.roapNonce, dn), pick(lf.roapDomain, r.dom))))
	}
	if lf.answerEarly {
		answer()
	}
	mk := r.mk
	if lf.badDEAMAC {
		mk = []byte("not-the-context-key!")
	}
	collect(f.resp("rdp-"+tag, LegRIDEA, "dea:80", rdpResponse(status, pick(lf.respReqID, r.riID), r.dea, pick(lf.respNonce, gn), pick(lf.respDomain, r.dom), pick(lf.respDevice, dev.ID()), mk)))
	if !lf.answerEarly {
		answer()
	}
	return all, results
}

func TestSeed000Flow(t *testing.T) {
	rig, v := newLeaveRig(t)
	t.Run("good", func(t *testing.T) {
		f := newFlow(t, v)
		all, results := rig.flowA(t, f, "good", leaveFault{})
		noErrors(t, all)
		for _, id := range []string{"DOM-7.5.2-LDR-VERBATIM", "DOM-7.5.2-EXPECTED-STATUS", "DOM-7.5.3.2-RI-ORDER", "GEN-MAC-NOKEY"} {
			wantNot(t, all, id)
		}
		for _, res := range results {
			if res.Correlation != "leave:"+rig.dom+":"+rig.dev.ID() {
				t.Fatalf("every message of the flow shares one correlation key, got %q", res.Correlation)
			}
		}
	})
	reserialize := func(b []byte) []byte {
		return bytes.Replace(b, []byte(`<roap:leaveDomainRequest xmlns:roap="`+decode.NSROAP+`">`), []byte(`<roap:leaveDomainRequest xmlns:roap='`+decode.NSROAP+`'>`), 1)
	}
	other := rig.p.Devices[1].ID()
	cases := []struct {
		name string
		lf   leaveFault
		rule string
		sev  decode.Severity
	}{
		{"embedded request re-serialized", leaveFault{embed: reserialize}, "DOM-7.5.2-LDR-VERBATIM", decode.SevError},
		{"reqID is not the embedded riID", leaveFault{reqID: rig.p.RIs[1].ID()}, "DOM-7.5.2-RIID-MATCH", decode.SevError},
		{"response reqID differs", leaveFault{respReqID: rig.p.RIs[1].ID()}, "DOM-7.5.3-IDS-MIRROR", decode.SevError},
		{"response nonce differs", leaveFault{respNonce: nonce("x")}, "DOM-7.5.3-NONCE", decode.SevWarning},
		{"userDomainId differs", leaveFault{respDomain: "OTHERDOMAIN42001"}, "DOM-7.5.3-DOMAIN-MATCH", decode.SevError},
		{"deviceId differs", leaveFault{respDevice: other}, "DOM-7.5.3-DEVICE-MATCH", decode.SevError},
		{"RI forwards another status", leaveFault{deaStatus: "InvalidDomain", roapStatus: "Success"}, "DOM-7.5.3.2-STATUS-ECHO", decode.SevError},
		{"RI echoes another nonce", leaveFault{roapNonce: nonce("y")}, "DOM-7.5.3.2-NONCE-ECHO", decode.SevError},
		{"RI echoes another domain", leaveFault{roapDomain: "OTHERDOMAIN42001"}, "DOM-7.5.3.2-DOMAIN-ECHO", decode.SevError},
		{"RI answers before the DEA", leaveFault{answerEarly: true}, "DOM-7.5.3.2-RI-ORDER", decode.SevError},
		{"RI forwards a DEA answer with a bad MAC", leaveFault{badDEAMAC: true}, "DOM-7.5.3.2-RI-ORDER", decode.SevError},
		{"DEA accepts an SCE DRM Agent", leaveFault{dev: rig.p.SCEDevice}, "DOM-7.5.2-EXPECTED-STATUS", decode.SevWarning},
		{"DEA accepts a bad signature", leaveFault{corruptLDSig: true}, "DOM-7.5.2-EXPECTED-STATUS", decode.SevWarning},
		{"DEA rejects a good request", leaveFault{deaStatus: "SignatureError"}, "DOM-7.5.2-EXPECTED-STATUS", decode.SevWarning},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			all, _ := rig.flowA(t, newFlow(t, v), strings.ReplaceAll(c.name, " ", "-"), c.lf)
			want(t, all, c.rule, c.sev)
			n := 0
			for _, f := range all {
				if f.Rule == c.rule {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%s reported %d times:%s", c.rule, n, dump(all))
			}
		})
	}
	t.Run("predicted statuses that match raise nothing", func(t *testing.T) {
		all, _ := rig.flowA(t, newFlow(t, v), "sce-ok", leaveFault{dev: rig.p.SCEDevice, deaStatus: "InvalidCertificateChain"})
		wantNot(t, all, "DOM-7.5.2-EXPECTED-STATUS")
		all, _ = rig.flowA(t, newFlow(t, v), "sig-ok", leaveFault{corruptLDSig: true, deaStatus: "SignatureError"})
		wantNot(t, all, "DOM-7.5.2-EXPECTED-STATUS")
		all, _ = rig.flowA(t, newFlow(t, v), "dom", leaveFault{deaStatus: "InvalidDomain"})
		wantNot(t, all, "DOM-7.5.2-EXPECTED-STATUS")
	})
	t.Run("user domain answered without the DEA", func(t *testing.T) {
		f := newFlow(t, v)
		rig.flowA(t, f, "first", leaveFault{})
		dn := nonce("direct")
		f.req("d", LegDeviceRI, "ri1:80", ldr{dev: rig.dev, riID: rig.riID, nonce: dn, domain: rig.dom}.build(t))
		_, res := f.resp("d", LegDeviceRI, "ri1:80", leaveResponse("Success", dn, rig.dom))
		want(t, res.Findings, "DOM-7.5-USERDOMAIN-ONLY", decode.SevWarning)
	})
	t.Run("device leg not captured", func(t *testing.T) {
		f := newFlow(t, v)
		body := ldr{dev: rig.dev, riID: rig.riID, nonce: nonce("nc"), domain: rig.dom}.build(t)
		_, res := f.req("r", LegRIDEA, "dea:80", rdpRequest(rig.riID, rig.dea, nonce("g"), body, nil, rig.mk))
		want(t, res.Findings, "DOM-7.5.2-LDR-VERBATIM", decode.SevInfo)
		noErrors(t, res.Findings)
	})
}

// join observes a successful 2-pass joinDomain of dev through the RI at server.
func join(t *testing.T, f *flow, ri *sim.Identity, server string, dev *sim.Identity, dom, tag string) Result {
	t.Helper()
	n := nonce("join-" + tag)
	req := roapRoot("joinDomainRequest", ident("deviceID", dev.ID()), ident("riID", ri.ID()), decode.El("nonce", n),
		decode.El("time", t0.Format("2006-01-02T15:04:05Z")), decode.El("domainID", dom), chainEl("certificateChain", dev))
	f.req("j-"+tag, LegDeviceRI, server, sign(t, req, dev.Key, signPSS20))
	resp := roapRoot("joinDomainResponse", decode.A("status", "Success"), ident("deviceID", dev.ID()), ident("riID", ri.ID()), decode.El("nonce", n),
		decode.El("domainInfo", decode.El("notAfter", "Infinite")), chainEl("certificateChain", ri))
	_, res := f.resp("j-"+tag, LegDeviceRI, server, sign(t, resp, ri.Key, signPSS20))
	return res
}

func TestFanoutAndTriggerFollows(t *testing.T) {
	rig, v := newLeaveRig(t)
	p := rig.p
	ri2 := p.RIs[1]
	setup := func(t *testing.T) *flow {
		f := newFlow(t, v)
		join(t, f, p.RIs[0], "ri1:80", rig.dev, rig.dom, "1")
		join(t, f, ri2, "ri2:80", rig.dev, rig.dom, "2")
		all, _ := rig.flowA(t, f, "fan", leaveFault{})
		noErrors(t, all)
		return f
	}
	t.Run("DEA triggers the other RI", func(t *testing.T) {
		f := setup(t)
		out := v.Tracker().Outstanding()
		if len(out) != 1 || out[0].Rule != "DOM-7.5-FANOUT" || out[0].RIID != ri2.ID() {
			t.Fatalf("outstanding after the proxy leave: %+v", out)
		}
		_, res := f.req("dt", LegRIDEA, "ri2:80", drmTrigger(rig.dea, nonce("dt"), rig.dom, []string{rig.dev.ID()}, rig.mk))
		clean(t, res.Findings)
		out = v.Tracker().Outstanding()
		if len(out) != 1 || out[0].Rule != "DOM-7.6.2-ROAP-TRIGGER-FOLLOWS" {
			t.Fatalf("after the drmTrigger the RI owes the device a trigger: %+v", out)
		}
		// RI 2 triggers the device (the push URL names it): nothing is left.
		f.push("push", "http://ri2:80/push?deviceID="+rig.dev.ID(), roapTrigger("leaveDomain", ri2.ID(), nonce("ld"), rig.dom))
		if out := v.Tracker().Outstanding(); len(out) != 0 {
			t.Fatalf("outstanding: %+v", out)
		}
		if late := v.Tracker().Tick(f.now.Add(time.Hour)); len(late) != 0 {
			t.Fatalf("late: %+v", late)
		}
	})
	t.Run("device leaves through the other RI too", func(t *testing.T) {
		// The DEA triggered RI 2 before (a DEA-initiated leave) and owes it nothing more; or the
		// device simply leaves through RI 2 as well. Either way RI 2 holds no context afterwards,
		// so the trigger expected by the first leave is owed no longer.
		f := setup(t)
		rig2 := *rig
		rig2.riID = ri2.ID()
		v.Trust().AddMACKey(MACKey{RI: ri2.ID(), DEA: rig.dea, Key: rig.mk})
		all, _ := rig2.flowA(t, f, "fan2", leaveFault{})
		noErrors(t, all)
		if out := v.Tracker().Outstanding(); len(out) != 0 {
			t.Fatalf("outstanding after the device left through RI 2 as well: %+v", out)
		}
		if late := v.Tracker().Tick(f.now.Add(time.Hour)); len(late) != 0 {
			t.Fatalf("late: %+v", late)
		}
	})
	t.Run("DEA skips the fan-out", func(t *testing.T) {
		f := setup(t)
		if late := v.Tracker().Tick(f.now.Add(time.Minute)); len(late) != 0 {
			t.Fatalf("nothing is late within the window: %+v", late)
		}
		late := v.Tracker().Tick(f.now.Add(11 * time.Minute))
		if len(late) != 1 {
			t.Fatalf("late: %+v", late)
		}
		want(t, []decode.Finding{late[0].Finding}, "DOM-7.5-FANOUT", decode.SevWarning)
		if !strings.Contains(late[0].Finding.Message, short(ri2.ID())) {
			t.Fatalf("the finding names the RI: %s", late[0].Finding.Message)
		}
	})
	t.Run("RI does not trigger the device", func(t *testing.T) {
		f := setup(t)
		f.req("dt", LegRIDEA, "ri2:80", drmTrigger(rig.dea, nonce("dt"), rig.dom, []string{rig.dev.ID()}, rig.mk))
		late := v.Tracker().Tick(f.now.Add(3 * time.Minute))
		if len(late) != 1 {
			t.Fatalf("late: %+v", late)
		}
		want(t, []decode.Finding{late[0].Finding}, "DOM-7.6.2-ROAP-TRIGGER-FOLLOWS", decode.SevWarning)
	})
	t.Run("the device's own leave proves the trigger arrived", func(t *testing.T) {
		f := setup(t)
		f.req("dt", LegRIDEA, "ri2:80", drmTrigger(rig.dea, nonce("dt"), rig.dom, []string{rig.dev.ID()}, rig.mk))
		f.req("l", LegDeviceRI, "ri2:80", ldr{dev: rig.dev, riID: ri2.ID(), nonce: nonce("again"), domain: rig.dom}.build(t))
		if late := v.Tracker().Tick(f.now.Add(time.Hour)); len(late) != 0 {
			t.Fatalf("late: %+v", late)
		}
	})
	t.Run("rejoin while the leave is incomplete", func(t *testing.T) {
		f := setup(t)
		res := join(t, f, p.RIs[0], "ri1:80", rig.dev, rig.dom, "3")
		want(t, res.Findings, "DOM-7.5-REJOIN-BLOCK", decode.SevError)
		v.Tracker().Tick(f.now.Add(time.Hour))
	})
	t.Run("drmTrigger on a device connection", func(t *testing.T) {
		f := newFlow(t, v)
		_, res := f.req("x", LegDeviceRI, "ri1:80", drmTrigger(rig.dea, nonce("dx"), rig.dom, []string{rig.dev.ID()}, rig.mk))
		want(t, res.Findings, "DOM-7.6.1-DIRECTION", decode.SevWarning)
		v.Tracker().Tick(f.now.Add(time.Hour))
	})
}

func TestTrackerBounds(t *testing.T) {
	p := testPKI(t)
	dev := p.Devices[0]
	tr := NewTracker(TrackerOptions{MaxExchanges: 8, MaxDevices: 4, MaxTDIDs: 3, MaxLeaves: 5, MaxPending: 6, Clock: func() time.Time { return t0 }})
	body := ldr{dev: dev, riID: p.RIs[0].ID(), nonce: nonce("b"), domain: "D001"}.build(t)
	m := dec(body)
	for i := 0; i < 200; i++ {
		tr.Observe(Observation{Message: m, Exchange: fmt.Sprint("e", i), Direction: decode.DirRequest})
		trg := dec(drmTrigger(p.DEA.ID(), nonce(fmt.Sprint(i)), "D001", []string{fmt.Sprint("dev", i)}, []byte("k")))
		tr.Observe(Observation{Message: trg, Exchange: fmt.Sprint("t", i)})
	}
	for i := 0; i < 50; i++ {
		resp := dec(tdr{ri: p.RIs[0], dev: fmt.Sprint("device-", i%7), tdid: fmt.Sprint("td", i), qty: 1}.build(t, signPSS20))
		tr.Observe(Observation{Message: resp, Exchange: fmt.Sprint("p", i)})
	}
	st := tr.Stats()
	if st["exchanges"] > 8 || st["leaves"] > 5 || st["pending"] > 6 || st["devices"] > 4 || st["bodies"] > 8 {
		t.Fatalf("bounds exceeded: %v", st)
	}
	tr.mu.Lock()
	tr.devices.each(func(_ string, d *deviceState) bool {
		if len(d.tdids) > 3 || len(d.order) > 3 {
			t.Errorf("per-device token IDs exceed their cap: %d", len(d.tdids))
		}
		return true
	})
	tr.mu.Unlock()
}

func TestTrackerConcurrent(t *testing.T) {
	rig, v := newLeaveRig(t)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			f := newFlow(t, v)
			for i := 0; i < 5; i++ {
				rig.flowA(t, f, fmt.Sprint(g, "-", i), leaveFault{})
			}
			v.Tracker().Tick(t0)
			v.Tracker().Outstanding()
		}(g)
	}
	wg.Wait()
}

// The proxy recycles a flow's parse trees once it is judged; the tracker holds the messages it
// reads again later. Recycling every message the moment it was tracked (poisoned, so a node
// read afterwards is garbage) must leave every verdict of the seed 000 and registration flows
// as it is without recycling.
func TestTrackerHoldsWhatItReadsLater(t *testing.T) {
	defer decode.SetRecycleMode(decode.SetRecycleMode(decode.RecyclePoison))
	rig, _ := newLeaveRig(t)
	p := testPKI(t)
	faults := []leaveFault{{}, {deaStatus: "InvalidDomain", roapStatus: "Success"}, {respNonce: nonce("other")}, {respDomain: "OTHERDOMAIN0001"},
		{answerEarly: true}, {embed: func(b []byte) []byte { return bytes.Replace(b, []byte("><"), []byte(">\n<"), 1) }}}
	run := func(recycle bool) []string {
		_, v := newLeaveRig(t)
		v.Trust().AddMACKey(MACKey{RI: rig.riID, DEA: rig.dea, Key: rig.mk})
		f := newFlow(t, v)
		f.recycle = recycle
		var out []string
		for i, lf := range faults {
			all, _ := rig.flowA(t, f, "hold"+strconv.Itoa(i), lf)
			for _, x := range all {
				out = append(out, strconv.Itoa(i)+" "+x.Rule+" "+string(x.Severity)+" "+x.Path)
			}
		}
		// A registration asking for NoOCSPResponse, answered without one: the response is
		// judged against the request's extensions.
		r := register(t, p, p.Devices[1], p.RIs[1], "sess-hold", func(o *regOpts) { o.noOCSP = true })
		for _, x := range f.registration(r, "hello-hold", "reg-hold") {
			out = append(out, "reg "+x.Rule+" "+string(x.Severity)+" "+x.Path)
		}
		// A token delivery without a chain is correct only if the request named the RI's key.
		ri, dev := p.RIs[1], p.Devices[1]
		n := nonce("tok-hold")
		f.req("tok-hold", LegDeviceRI, "ri2:80", tokenRequest(t, dev, ri.ID(), n, "td-hold", ri.ID()))
		_, res := f.resp("tok-hold", LegDeviceRI, "ri2:80", tdr{ri: ri, dev: dev.ID(), tdid: "td-hold", nonce: n, qty: 5, noChain: true}.build(t, signPSS20))
		for _, x := range res.Findings {
			out = append(out, "tok "+x.Rule+" "+string(x.Severity)+" "+x.Path)
		}
		return out
	}
	want, got := run(false), run(true)
	if !slices.Equal(got, want) {
		t.Fatalf("verdicts with every tree recycled after tracking:\n%s\nwithout:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(want) == 0 {
		t.Fatal("no findings at all: the faults did not reach the tracker")
	}
}
