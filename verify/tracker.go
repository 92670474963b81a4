package verify

import (
	"crypto/sha256"
	"math/big"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/roapproxy/roapproxy/decode"
)

// Leg names the connection a message travelled on.
type Leg string

// Legs.
const (
	LegUnknown  Leg = ""
	LegDeviceRI Leg = "device-ri" // DRM Agent <-> Rights Issuer: ROAP, triggers, token messages
	LegRIDEA    Leg = "ri-dea"    // Rights Issuer <-> Domain Enforcement Agent: SCE/RDP
)

// Observation is one message seen by the proxy, with what the transport knows about it. Only
// Message is required; the more is filled in, the more rules can be applied.
type Observation struct {
	Message *decode.Message
	// Time the message was seen (zero: the tracker's clock).
	Time time.Time
	// Leg it travelled on (unknown: inferred from the message family).
	Leg Leg
	// Direction: request (sent by the HTTP client) or response (unknown: inferred from the kind).
	Direction decode.Direction
	// Exchange identifies the HTTP request/response pair, so responses pair with their requests.
	// When empty, the connection endpoints pair them.
	Exchange string
	// Client and Server are the endpoints of the connection ("host:port"). Server also names the
	// peer a drmTrigger is sent to.
	Client, Server string
	// URL is the request URL (for a response, of the request it answers).
	URL string
	// DeviceID names the device a pushed message is for when the message does not (a trigger
	// fetched with GET /push?deviceID=…). Taken from URL's deviceID query parameter when empty.
	DeviceID string
}

// TrackerOptions bounds and shapes a Tracker. Zero values take the defaults.
type TrackerOptions struct {
	Clock        func() time.Time // default time.Now
	MaxExchanges int              // requests waiting for their response (default 4096)
	MaxSessions  int              // registration sessions (default 1024)
	MaxDevices   int              // devices with token-delivery history (default 4096)
	MaxLeaves    int              // leave-domain runs across both legs (default 1024)
	MaxTriggers  int              // ROAP triggers remembered by nonce (default 1024)
	MaxPending   int              // outstanding expectations (default 1024)
	MaxTDIDs     int              // token delivery IDs remembered per device (default 256)
	// TriggerWindow is how long after a drmTrigger the RI has to send each listed device a ROAP
	// leaveDomain trigger (DOM-7.6.2; operator policy, default 2m).
	TriggerWindow time.Duration
	// FanoutWindow is how long after a successful proxy leave the DEA has to trigger the other
	// RIs holding a context (DOM-7.5-FANOUT; operator policy, default 10m).
	FanoutWindow time.Duration
}

// Pending is an expectation that a later message must meet by a deadline.
type Pending struct {
	Rule     string    `json:"rule"`
	Key      string    `json:"key"` // correlation key of the flow that raised it
	DeviceID string    `json:"deviceID,omitempty"`
	DomainID string    `json:"domainID,omitempty"`
	RIID     string    `json:"riID,omitempty"` // the RI that must be triggered (FANOUT)
	Since    time.Time `json:"since"`
	Deadline time.Time `json:"deadline"`
	// Finding is set on expectations returned by Tick: the late finding to report.
	Finding decode.Finding `json:"finding"`
}

// Tracker applies the rules that need earlier messages: nonce and identifier echoes, session
// continuity, trigger nonces, token delivery replays, and the seed 000 rules across the
// device<->RI and RI<->DEA legs. Its memory is bounded (the oldest state is evicted first) and it
// is safe for concurrent use.
type Tracker struct {
	mu  sync.Mutex
	opt TrackerOptions

	exchanges   *bounded[string, *exchangeEntry]
	sessions    *bounded[string, *regSession]
	lastSession *bounded[string, string]   // deviceID -> sessionId of its latest riHello
	regs        *bounded[string, *regInfo] // deviceID|riID -> registration facts
	devices     *bounded[string, *deviceState]
	triggers    *bounded[string, *trigInfo]   // ROAP trigger nonce -> trigger
	leaves      *bounded[string, *leaveState] // deviceID|device nonce -> leave run
	leaveByRDP  *bounded[string, string]      // RDP request nonce -> leaves key
	leaveByLDN  *bounded[string, string]      // device nonce -> leaves key
	bodies      *bounded[[32]byte, time.Time] // SHA-256 of device->RI request bodies
	members     *bounded[string, map[string]time.Time]
	userDomains *bounded[string, time.Time]
	endpoints   *bounded[string, string] // RI server endpoint -> riID
	pending     *bounded[string, *Pending]
}

type exchangeEntry struct {
	req  *decode.Message
	at   time.Time
	corr string
}

type regSession struct {
	hello, riHello []byte
	deviceIDs      []string
	riID           string
	regReq         *decode.Message
}

type regInfo struct {
	noOCSP bool
	at     time.Time
}

type deviceState struct {
	tdids map[string]time.Time
	order []string

	// Seed 001 reporting state, each part capped so a device's history stays small.
	deliveries int            // accepted Success deliveries seen (any RI)
	reporting  []*reportTerms // accepted deliveries that carried a tokenReportingURL, oldest first
	failed     map[string]failedRun
	failedSeq  []string  // failed-run nonces, oldest first
	advance    *ltctWait // an on-time report still owed an extended latestTokenConsumptionTime
}

// Per-device caps of the seed 001 reporting state.
const (
	maxReportTerms = 8  // deliveries with a reporting URL remembered per device
	maxFailedRuns  = 32 // failed-run nonces remembered per device
)

// reportTerms are the reporting terms of one accepted delivery that asked for reports.
type reportTerms struct {
	tdid, riID, url        string
	at                     time.Time // when the delivery was seen
	earliest, latest, ltct time.Time // zero when absent or unparseable
	// The last report from the device to this RI seen after this delivery and not refused; prev*
	// is what a refusal of that report restores.
	reportedAt, prevReportedAt   time.Time
	reportNonce, prevReportNonce string
}

// failedRun is a token run that ended with a non-Success status.
type failedRun struct {
	kind, status string
	at           time.Time
}

// ltctWait is an on-time report waiting for a delivery that moves the consumption deadline.
type ltctWait struct {
	riID, nonce, tdid string
	reportAt, prev    time.Time
}

type trigInfo struct {
	variant, riID, domainID, roapURL, deviceID string
	at                                         time.Time
}

type leaveState struct {
	deviceID, nonce, domainID, riID string
	bodyHash                        [32]byte
	haveBody                        bool
	bodyLen                         int
	rdpReq                          *decode.Message
	ldr                             *decode.Message
	predicted, why                  string
	devCertID                       string
	rdpResp                         bool
	rdpStatus                       string
	rdpMAC                          tri
}

// NewTracker returns a Tracker with the given options.
func NewTracker(o TrackerOptions) *Tracker {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxExchanges, 4096)
	def(&o.MaxSessions, 1024)
	def(&o.MaxDevices, 4096)
	def(&o.MaxLeaves, 1024)
	def(&o.MaxTriggers, 1024)
	def(&o.MaxPending, 1024)
	def(&o.MaxTDIDs, 256)
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.TriggerWindow <= 0 {
		o.TriggerWindow = 2 * time.Minute
	}
	if o.FanoutWindow <= 0 {
		o.FanoutWindow = 10 * time.Minute
	}
	return &Tracker{
		opt:         o,
		exchanges:   newBounded[string, *exchangeEntry](o.MaxExchanges, false),
		sessions:    newBounded[string, *regSession](o.MaxSessions, false),
		lastSession: newBounded[string, string](o.MaxDevices, false),
		regs:        newBounded[string, *regInfo](o.MaxDevices, false),
		devices:     newBounded[string, *deviceState](o.MaxDevices, false),
		triggers:    newBounded[string, *trigInfo](o.MaxTriggers, false),
		leaves:      newBounded[string, *leaveState](o.MaxLeaves, false),
		leaveByRDP:  newBounded[string, string](o.MaxLeaves, false),
		leaveByLDN:  newBounded[string, string](o.MaxLeaves, false),
		bodies:      newBounded[[32]byte, time.Time](o.MaxExchanges, false),
		members:     newBounded[string, map[string]time.Time](o.MaxDevices, false),
		userDomains: newBounded[string, time.Time](o.MaxLeaves, false),
		endpoints:   newBounded[string, string](o.MaxDevices, false),
		pending:     newBounded[string, *Pending](o.MaxPending, false),
	}
}

// Observe applies the cross-message rules to one message and returns their findings. It does
// not check signatures (Verifier.Observe does both).
func (t *Tracker) Observe(o Observation) []decode.Finding { return t.Track(o).Findings }

// Track is Observe returning the correlation key too.
func (t *Tracker) Track(o Observation) Result {
	if o.Message == nil {
		return Result{}
	}
	if o.Time.IsZero() {
		o.Time = t.opt.Clock()
	}
	res := t.observeSafe(t.normalize(o), nil)
	res.Findings = dedupe(o.Message, res.Findings)
	return res
}

// observeSafe is observe turning a panic (a bug) into a finding.
func (t *Tracker) observeSafe(o Observation, rep *report) (res Result) {
	defer func() {
		if p := recover(); p != nil {
			res = Result{Findings: []decode.Finding{RuleInternal.At("", "internal tracker error: %v", p)}}
		}
	}()
	return t.observe(o, rep)
}

var requestKinds = []string{"deviceHello", "registrationRequest", "roRequest", "joinDomainRequest", "leaveDomainRequest",
	"meteringReportSubmit", "tokenRequest", "tokenConsumptionReport", "roUploadRequest",
	"rdpProxyLeaveUserDomainRequest", "drmTrigger"}

// normalize fills in what the observation leaves out.
func (t *Tracker) normalize(o Observation) Observation {
	m := o.Message
	if o.Leg == LegUnknown {
		o.Leg = LegDeviceRI
		if m.Family == decode.FamilySCE {
			o.Leg = LegRIDEA
		}
	}
	if o.Direction == decode.DirUnknown {
		o.Direction = decode.DirResponse
		if kindIs(m, requestKinds...) {
			o.Direction = decode.DirRequest
		}
	}
	if o.Exchange == "" && (o.Client != "" || o.Server != "") {
		o.Exchange = "conn:" + o.Client + "|" + o.Server
	}
	// Without a '?' the URL has no query to take a deviceID from; parsing it is then wasted.
	if o.DeviceID == "" && o.URL != "" && strings.IndexByte(o.URL, '?') >= 0 {
		if u, err := url.Parse(o.URL); err == nil {
			// An unescaped '+' of a base64 identifier decodes as a space; base64 has no spaces.
			o.DeviceID = strings.ReplaceAll(u.Query().Get("deviceID"), " ", "+")
		}
	}
	return o
}

// contextFor returns what Check needs from earlier messages.
func (t *Tracker) contextFor(o Observation) Context {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := o.Message
	ctx := Context{Time: o.Time}
	if o.Direction == decode.DirResponse && o.Exchange != "" {
		if e, ok := t.exchanges.get(o.Exchange); ok {
			ctx.Request = e.req
		}
	}
	switch {
	case kindIs(m, "registrationRequest"):
		if s, ok := t.sessions.get(sessionOf(m)); ok {
			ctx.DeviceHello, ctx.RIHello = s.hello, s.riHello
			if len(s.deviceIDs) == 1 {
				ctx.SignerID = s.deviceIDs[0]
			}
		}
	case kindIs(m, "registrationResponse"):
		if s, ok := t.sessions.get(sessionOf(m)); ok {
			ctx.SignerID = s.riID
			if ctx.Request == nil {
				ctx.Request = s.regReq
			}
		}
	}
	return ctx
}

// takeRequest returns (and forgets) the request of the exchange o answers.
func (t *Tracker) takeRequest(o Observation) *exchangeEntry {
	if o.Exchange == "" {
		return nil
	}
	e, ok := t.exchanges.get(o.Exchange)
	if ok {
		t.exchanges.del(o.Exchange)
		e.req.Release()
	}
	return e
}

func (t *Tracker) observe(o Observation, rep *report) Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := o.Message
	ob := &obs{t: t, o: o, m: m, rep: rep}
	switch {
	case kindIs(m, "deviceHello"):
		ob.deviceHello()
	case kindIs(m, "riHello"):
		ob.riHello()
	case kindIs(m, "registrationRequest"):
		ob.registrationRequest()
	case kindIs(m, "registrationResponse"):
		ob.registrationResponse()
	case kindIs(m, "roRequest", "joinDomainRequest", "leaveDomainRequest", "meteringReportSubmit",
		"tokenRequest", "tokenConsumptionReport", "roUploadRequest"):
		ob.deviceRequest()
	case kindIs(m, "leaveDomainResponse"):
		ob.leaveDomainResponse()
	case kindIs(m, "roResponse", "joinDomainResponse", "meteringReportResponse", "roUploadResponse"):
		ob.riResponse()
	case kindIs(m, "TokenDeliveryResponse"):
		ob.tokenDelivery()
	case kindIs(m, "roapTrigger"):
		ob.roapTrigger()
	case kindIs(m, "rdpProxyLeaveUserDomainRequest"):
		ob.rdpRequest()
	case kindIs(m, "rdpProxyLeaveUserDomainResponse"):
		ob.rdpResponse()
	case kindIs(m, "drmTrigger"):
		ob.drmTrigger()
	}
	return Result{Findings: ob.fs, Correlation: ob.corr, Joins: ob.joins}
}

// obs is one observation being applied (the tracker lock is held).
type obs struct {
	t     *Tracker
	o     Observation
	m     *decode.Message
	rep   *report
	fs    []decode.Finding
	corr  string
	joins []string
}

func (b *obs) add(f decode.Finding) { b.fs = append(b.fs, f) }

func (b *obs) join(keys ...string) {
	for _, k := range keys {
		if k != "" && k != b.corr {
			b.joins = append(b.joins, k)
		}
	}
}

func (b *obs) root() string {
	if b.m.Root == nil {
		return ""
	}
	return "/" + b.m.Root.Local
}

// pathOf returns the path of m's root child name (or the root path).
func (b *obs) pathOf(name string) string {
	if b.m.Root == nil {
		return ""
	}
	if n := b.m.Root.ChildFold(name); n != nil {
		return decode.PathOf(n)
	}
	if n := findDesc(b.m.Root, 6, name); n != nil {
		return decode.PathOf(n)
	}
	return b.root()
}

func (b *obs) remember(corr string) {
	if b.o.Exchange == "" || b.o.Direction != decode.DirRequest {
		return
	}
	// Held until its response takes it (see decode.Recycle); an evicted entry's message is left
	// to the collector.
	b.m.Hold()
	b.t.exchanges.put(b.o.Exchange, &exchangeEntry{req: b.m, at: b.o.Time, corr: corr})
}

func (b *obs) learnEndpoint(riID string) {
	if riID != "" && b.o.Server != "" && b.o.Leg == LegDeviceRI {
		b.t.endpoints.put(b.o.Server, riID)
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}

// ---- registration ----

func (b *obs) deviceHello() {
	b.corr = "reg:x:" + b.o.Exchange
	if b.o.Exchange == "" {
		b.corr = "reg:device:" + strings.Join(idsOf(b.m, "deviceID", "deviceIDs"), ",")
	}
	b.triggerNonce()
	b.remember(b.corr)
}

func (b *obs) riHello() {
	e := b.t.takeRequest(b.o)
	sid := sessionOf(b.m)
	b.corr = "reg:" + sid
	if e != nil {
		b.join(e.corr)
	}
	riID := idOf(b.m, "riID")
	b.learnEndpoint(riID)
	if sid == "" || statusOf(b.m) != "Success" {
		return
	}
	s := &regSession{riHello: b.m.Raw, riID: riID}
	if e != nil && kindIs(e.req, "deviceHello") {
		s.hello = e.req.Raw
		s.deviceIDs = idsOf(e.req, "deviceID", "deviceIDs")
		for _, d := range s.deviceIDs {
			b.t.lastSession.put(d, sid)
		}
	}
	b.t.sessions.put(sid, s)
}

// deviceOfRegReq is the device a registrationRequest is for: its leaf certificate, or the only
// deviceID of its session's deviceHello.
func deviceOfRegReq(m *decode.Message, s *regSession) string {
	if id := idOf(m, "deviceID"); id != "" {
		return id
	}
	if ch := chainNamed(m, "certificateChain", true); ch != nil {
		return KeyID(ch.Certs[0])
	}
	if s != nil && len(s.deviceIDs) == 1 {
		return s.deviceIDs[0]
	}
	return ""
}

func (b *obs) registrationRequest() {
	sid := sessionOf(b.m)
	b.corr = "reg:" + sid
	b.triggerNonce()
	s, ok := b.t.sessions.get(sid)
	dev := deviceOfRegReq(b.m, s)
	path := b.root() + "/@sessionId"
	switch {
	case ok:
		// Held for a registrationResponse on another exchange (rules read the request's tree);
		// never released, so the collector takes it.
		b.m.Hold()
		s.regReq = b.m
		if len(s.deviceIDs) > 0 && dev != "" && !contains(s.deviceIDs, dev) {
			b.add(RuleRegSession.AtSev(sevW, b.pathOf("certificateChain"), "the device certificate (ID %s) is none of the deviceIDs its deviceHello offered for session %s", dev, sid))
		}
	case sid == "":
	default:
		if last, seen := b.t.lastSession.get(dev); seen && last != sid {
			b.add(RuleRegSession.At(path, "sessionId %q was not issued by any captured riHello; the riHello this device received gave %q", sid, last))
		} else {
			b.add(RuleRegSession.AtSev(sevI, path, "no riHello with sessionId %q was captured; session continuity and the signature cannot be checked", sid))
		}
	}
	riID := ""
	if s != nil {
		riID = s.riID
	}
	if dev != "" {
		b.t.regs.put(dev+"|"+riID, &regInfo{noOCSP: decode.HasExtension(b.m.Root, "NoOCSPResponse"), at: b.o.Time})
	}
	b.remember(b.corr)
}

func (b *obs) registrationResponse() {
	e := b.t.takeRequest(b.o)
	sid := sessionOf(b.m)
	b.corr = "reg:" + sid
	s, _ := b.t.sessions.get(sid)
	var req *decode.Message
	if e != nil && kindIs(e.req, "registrationRequest") {
		req = e.req
		if rs := sessionOf(req); sid != "" && rs != sid {
			b.add(RuleRegSession.At(b.root()+"/@sessionId", "registrationResponse sessionId %q differs from %q of the registrationRequest it answers", sid, rs))
			b.join("reg:" + rs)
		}
	} else if s != nil {
		req = s.regReq
	}
	riID := idOf(b.m, "riID")
	if riID == "" && s != nil {
		riID = s.riID
	}
	b.learnEndpoint(riID)
	if req != nil && statusOf(b.m) == "Success" {
		if dev := deviceOfRegReq(req, s); dev != "" {
			// The registration is with this RI: re-key the facts the request recorded.
			info := &regInfo{noOCSP: decode.HasExtension(req.Root, "NoOCSPResponse"), at: b.o.Time}
			b.t.regs.put(dev+"|"+riID, info)
		}
	}
}

// ---- triggers and triggered requests ----

func triggerBody(m *decode.Message) *decode.Node {
	if m.Root == nil {
		return nil
	}
	for _, c := range m.Root.Children {
		if c.Kind == decode.ElementNode && !strings.EqualFold(c.Local, "signature") && !strings.EqualFold(c.Local, "encKey") {
			return c
		}
	}
	return nil
}

// triggerVariant returns the trigger type: the element name, or for a DRM 2.1 extendedTrigger
// its type attribute.
func triggerVariant(m *decode.Message) string {
	body := triggerBody(m)
	v := m.Variant
	if body != nil && v == "" {
		v = body.Local
	}
	if strings.EqualFold(v, "extendedTrigger") && body != nil {
		if ty, ok := body.Attr("type"); ok {
			return ty
		}
	}
	return v
}

func (b *obs) roapTrigger() {
	body := triggerBody(b.m)
	ti := &trigInfo{variant: triggerVariant(b.m), at: b.o.Time, deviceID: b.o.DeviceID}
	nonce := nonceOf(b.m)
	if body != nil {
		ti.riID = decode.IdentifierHash(body.ChildFold("riID"))
		ti.domainID = body.ChildFold("domainID").TextContent()
		ti.roapURL = body.ChildFold("roapURL").TextContent()
		if nonce == "" {
			nonce = body.ChildFold("nonce").TextContent()
		}
		if ti.deviceID == "" {
			ti.deviceID = decode.IdentifierHash(body.ChildFold("deviceID"))
		}
	}
	if ti.riID == "" {
		ti.riID = idOf(b.m, "riID")
	}
	if ti.domainID == "" {
		ti.domainID = idOf(b.m, "domainID")
	}
	b.corr = "trigger:" + nonce
	if nonce == "" {
		b.corr = "trigger:" + b.o.Exchange
	}
	if nonce != "" {
		b.t.triggers.put(nonce, ti)
	}
	if strings.EqualFold(ti.variant, "leaveDomain") {
		if ti.deviceID != "" {
			b.corr, b.joins = "leave:"+ti.domainID+":"+ti.deviceID, nil
			b.join("trigger:" + nonce)
		}
		b.t.satisfyFollows(ti.domainID, ti.deviceID)
	}
}

// triggerNonce checks a request's triggerNonce against the triggers seen (ROAP-*-TRIGGERNONCE).
func (b *obs) triggerNonce() {
	tn := triggerNonceOf(b.m)
	if tn == "" {
		return
	}
	b.join("trigger:" + tn)
	r := RuleTriggerNonce
	if kindIs(b.m, "leaveDomainRequest") {
		r = RuleLDTrigNonce
	}
	path := b.root() + "/@triggerNonce"
	ti, ok := b.t.triggers.get(tn)
	if !ok {
		riID := idOf(b.m, "riID")
		sameRI := false
		b.t.triggers.each(func(_ string, x *trigInfo) bool {
			if riID != "" && x.riID == riID {
				sameRI = true
				return false
			}
			return true
		})
		if sameRI {
			b.add(r.At(path, "triggerNonce %s matches no trigger captured from this RI (triggers from it were seen)", tn))
		} else {
			b.add(r.AtSev(sevI, path, "triggerNonce %s: the trigger was not captured (push or another path)", tn))
		}
		return
	}
	want := map[string][]string{
		"leaveDomain":         {"leaveDomainRequest"},
		"joinDomain":          {"joinDomainRequest", "deviceHello", "registrationRequest"},
		"roAcquisition":       {"roRequest", "deviceHello", "registrationRequest"},
		"registrationRequest": {"deviceHello", "registrationRequest"},
		"meteringReport":      {"meteringReportSubmit", "deviceHello", "registrationRequest"},
		"roUploadRequest":     {"roUploadRequest", "deviceHello", "registrationRequest"},
	}
	if kinds, known := want[ti.variant]; known && !kindIs(b.m, kinds...) {
		b.add(r.At(path, "triggerNonce names a %s trigger, but this is a %s", ti.variant, b.m.Kind))
	}
	if riID := idOf(b.m, "riID"); riID != "" && ti.riID != "" && riID != ti.riID {
		b.add(r.At(b.pathOf("riID"), "the %s trigger came from RI %s, but this request addresses RI %s", ti.variant, ti.riID, riID))
	}
	if dom := idOf(b.m, "domainID"); dom != "" && ti.domainID != "" && dom != ti.domainID && (kindIs(b.m, "leaveDomainRequest", "joinDomainRequest")) {
		b.add(r.At(b.pathOf("domainID"), "the %s trigger named domain %s, but the request names %s", ti.variant, ti.domainID, dom))
	}
	if b.o.URL != "" && ti.roapURL != "" && !sameURL(b.o.URL, ti.roapURL) && !kindIs(b.m, "registrationRequest") {
		b.add(RuleTriggerURL.At(path, "request POSTed to %s; the trigger's roapURL is %s", b.o.URL, ti.roapURL))
	}
}

func sameURL(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return strings.EqualFold(ua.Host, ub.Host) && strings.TrimSuffix(ua.Path, "/") == strings.TrimSuffix(ub.Path, "/")
}

// ---- 2-pass device requests and RI responses ----

func (b *obs) deviceRequest() {
	m := b.m
	dev, nonce, dom := idOf(m, "deviceID"), nonceOf(m), domainOf(m)
	switch {
	case kindIs(m, "joinDomainRequest"):
		b.corr = "join:" + dom + ":" + dev
	case kindIs(m, "leaveDomainRequest"):
		b.corr = "leave:" + dom + ":" + dev
	case kindIs(m, "tokenRequest", "tokenConsumptionReport"):
		b.corr = "token:" + dev + ":" + nonce
	case kindIs(m, "meteringReportSubmit"):
		b.corr = "meter:" + dev + ":" + nonce
	default:
		b.corr = "ro:" + dev + ":" + nonce
	}
	b.triggerNonce()
	b.learnEndpoint(idOf(m, "riID"))
	// Only a leaveDomainRequest can come back inside an RDP request (seed 000), where its bytes
	// are compared with these; the same bytes always decode to the same kind, so other requests
	// are not hashed.
	var body [32]byte
	if kindIs(m, "leaveDomainRequest") {
		body = sha256.Sum256(m.Raw)
		if b.o.Leg == LegDeviceRI && len(m.Raw) > 0 {
			b.t.bodies.put(body, b.o.Time)
		}
	}
	if kindIs(m, "leaveDomainRequest") && dev != "" && nonce != "" {
		key := dev + "|" + nonce
		st, ok := b.t.leaves.get(key)
		if !ok {
			st = &leaveState{deviceID: dev, nonce: nonce}
		}
		st.domainID, st.riID = dom, idOf(m, "riID")
		st.bodyHash, st.haveBody, st.bodyLen = body, true, len(m.Raw)
		b.t.leaves.put(key, st)
		b.t.leaveByLDN.put(nonce, key)
		// A device leaving the domain shows that the RI's leaveDomain trigger reached it.
		b.t.satisfyFollows(dom, dev)
	}
	if kindIs(m, "tokenRequest", "tokenConsumptionReport") {
		b.tokenDeviceMessage()
	}
	b.remember(b.corr)
}

func (b *obs) echo(req *decode.Message, key string, r decode.Rule) {
	got, want := idOf(b.m, key), idOf(req, key)
	if key == "nonce" {
		got, want = nonceOf(b.m), nonceOf(req)
	}
	if got == "" || want == "" || got == want {
		return
	}
	b.add(r.At(b.pathOf(key), "%s %s differs from %s in the %s it answers", key, got, want, req.Kind))
}

func (b *obs) riResponse() {
	e := b.t.takeRequest(b.o)
	m := b.m
	riID := idOf(m, "riID")
	b.learnEndpoint(riID)
	if e == nil {
		dev := idOf(m, "deviceID")
		b.corr = "ro:" + dev + ":1pass"
		if kindIs(m, "joinDomainResponse") {
			b.corr = "join:?:" + dev
		}
		return
	}
	b.corr = e.corr
	req := e.req
	if statusOf(m) != "Success" {
		if kindIs(req, "tokenRequest", "tokenConsumptionReport") {
			b.tokenFailure(req, statusOf(m)) // a token run ended by another kind of response
		}
		return
	}
	b.echo(req, "nonce", RuleNonceEcho)
	b.echo(req, "deviceID", RuleDeviceIDEcho)
	b.echo(req, "riID", RuleRIIDEcho)
	if kindIs(m, "joinDomainResponse") && kindIs(req, "joinDomainRequest") {
		dom, dev := domainOf(req), idOf(req, "deviceID")
		if riID == "" {
			riID = idOf(req, "riID")
		}
		if dom == "" || dev == "" {
			return
		}
		key := dom + "|" + dev
		// Joining while a proxy leave is still being fanned out breaks DOM-7.5.
		for _, p := range b.t.pendingFor("fanout|" + key + "|") {
			b.add(RuleRejoin.At(b.root()+"/@status", "device %s joined domain %s again while its proxy leave is still incomplete at RI %s (DEA trigger outstanding since %s)", short(dev), dom, short(p.RIID), p.Since.UTC().Format(time.RFC3339)))
		}
		set, _ := b.t.members.get(key)
		if set == nil {
			set = map[string]time.Time{}
		}
		set[riID] = b.o.Time
		b.t.members.put(key, set)
	}
}

// ---- seed 000: leaveDomainResponse across both legs ----

func (b *obs) leaveDomainResponse() {
	e := b.t.takeRequest(b.o)
	m := b.m
	var st *leaveState
	var req *decode.Message
	if e != nil && kindIs(e.req, "leaveDomainRequest") {
		req = e.req
		b.corr = e.corr
		st, _ = b.t.leaves.get(idOf(req, "deviceID") + "|" + nonceOf(req))
	} else if n := nonceOf(m); n != "" {
		if key, ok := b.t.leaveByLDN.get(n); ok {
			st, _ = b.t.leaves.get(key)
		}
	}
	if st != nil && b.corr == "" {
		b.corr = "leave:" + st.domainID + ":" + st.deviceID
	}
	if b.corr == "" {
		b.corr = "leave:" + domainOf(m) + ":?"
	}
	status := statusOf(m)
	gotNonce, gotDom := nonceOf(m), domainOf(m)
	if st != nil && st.rdpReq != nil {
		// Proxied: the RI must have a valid DEA answer first, and forward it faithfully.
		switch {
		case !st.rdpResp:
			b.add(RuleRIOrder.At(b.root(), "the RI answered the device's leave before any rdpProxyLeaveUserDomainResponse from the DEA was seen"))
		case st.rdpMAC == fail:
			b.add(RuleRIOrder.At(b.root(), "the RI forwarded a DEA response whose MAC did not verify; it must discard such a response"))
		}
		if st.rdpResp && status != "" && status != st.rdpStatus {
			b.add(RuleLDStatusEcho.At(b.root()+"/@status", "status %s differs from the DEA's %s", status, st.rdpStatus))
		}
		if gotNonce != "" && gotNonce != st.nonce {
			b.add(RuleLDNonceEcho.At(b.pathOf("nonce"), "nonce %s differs from the leaveDomainRequest nonce %s", gotNonce, st.nonce))
		}
		if gotDom != "" && st.domainID != "" && gotDom != st.domainID {
			b.add(RuleLDDomainEcho.At(b.pathOf("domainID"), "domainID %s differs from the leaveDomainRequest's %s", gotDom, st.domainID))
		}
		return
	}
	dom := gotDom
	if st != nil {
		dom = st.domainID
	}
	if _, user := b.t.userDomains.get(dom); user && dom != "" {
		b.add(RuleUserDomain.At(b.root(), "domain %s is a User Domain (seen on the RI<->DEA leg), yet the RI answered this leave without a Proxy Leave exchange with the DEA", dom))
	}
	if req != nil && status == "Success" {
		b.echo(req, "nonce", RuleNonceEcho)
		if gotDom != "" && domainOf(req) != "" && gotDom != domainOf(req) {
			b.add(RuleDomainEcho.At(b.pathOf("domainID"), "domainID %s differs from the request's %s", gotDom, domainOf(req)))
		}
	}
}

// ---- seed 000: RI <-> DEA ----

func (b *obs) rdpRequest() {
	m := b.m
	ldr := nestedLDR(m)
	reqID, resID := idOf(m, "reqID"), idOf(m, "resID")
	if ldr == nil {
		b.corr = "leave:?:?"
		b.remember(b.corr)
		return
	}
	dev, dn, dom, ldrRI := idOf(ldr, "deviceID"), nonceOf(ldr), domainOf(ldr), idOf(ldr, "riID")
	b.corr = "leave:" + dom + ":" + dev
	if reqID != "" && ldrRI != "" && reqID != ldrRI {
		b.add(RuleLDRRIID.At(b.pathOf("reqID"), "reqID %s is not the riID %s inside the embedded leaveDomainRequest", reqID, ldrRI))
	}
	key := dev + "|" + dn
	st, ok := b.t.leaves.get(key)
	h := sha256.Sum256(ldr.Raw)
	ldrPath := ldr.NestedPath
	if ldrPath == "" {
		ldrPath = b.pathOf("leaveDomainRequest")
	}
	switch {
	case ok && st.haveBody && st.bodyHash != h:
		b.add(RuleLDRVerbatim.At(ldrPath, "the embedded leaveDomainRequest (%d bytes) is not byte-identical to the one the device POSTed (%d bytes, same deviceID and nonce): the RI must forward it as received", len(ldr.Raw), st.bodyLen))
	case ok && st.haveBody:
	default:
		if _, seen := b.t.bodies.get(h); !seen {
			b.add(RuleLDRVerbatim.AtSev(sevI, ldrPath, "the device's leaveDomainRequest (deviceID %s, nonce %s) was not captured on the device leg: byte identity cannot be checked", short(dev), dn))
		}
	}
	if !ok {
		st = &leaveState{deviceID: dev, nonce: dn, domainID: dom, riID: ldrRI}
	}
	// The leave run reads only their IDs today; held so that a rule reading their trees later
	// stays safe. Never released, so the collector takes them (see decode.Recycle).
	m.Hold()
	ldr.Hold()
	st.rdpReq, st.ldr = m, ldr
	st.rdpResp, st.rdpStatus, st.rdpMAC = false, "", unknown
	if b.rep != nil {
		st.devCertID = b.rep.devID
		switch {
		case b.rep.devChain == fail || b.rep.devKP == fail:
			st.predicted, st.why = "InvalidCertificateChain", "the device chain or its key purposes fail"
		case b.rep.ldrSig == fail:
			st.predicted, st.why = "SignatureError", "the embedded leaveDomainRequest signature does not verify"
		case b.rep.devChain == pass && b.rep.devKP == pass && b.rep.ldrSig == pass:
			st.predicted, st.why = "Success", "chain, key purposes and signature verify"
		}
	}
	b.t.leaves.put(key, st)
	b.t.leaveByLDN.put(dn, key)
	if n := nonceOf(m); n != "" {
		b.t.leaveByRDP.put(n, key)
	}
	if dom != "" {
		b.t.userDomains.put(dom, b.o.Time)
	}
	_ = resID
	b.remember(b.corr)
}

func (b *obs) rdpResponse() {
	m := b.m
	e := b.t.takeRequest(b.o)
	var req *decode.Message
	var st *leaveState
	if e != nil && kindIs(e.req, "rdpProxyLeaveUserDomainRequest") {
		req = e.req
		if ldr := nestedLDR(req); ldr != nil {
			st, _ = b.t.leaves.get(idOf(ldr, "deviceID") + "|" + nonceOf(ldr))
		}
	} else if n := nonceOf(m); n != "" {
		if key, ok := b.t.leaveByRDP.get(n); ok {
			if st, _ = b.t.leaves.get(key); st != nil {
				req = st.rdpReq
			}
		}
	}
	status := statusOf(m)
	dom, dev := domainOf(m), idOf(m, "deviceID")
	if dev == "" {
		dev = idOf(m, "deviceId")
	}
	if st != nil {
		b.corr = "leave:" + st.domainID + ":" + st.deviceID
	} else {
		b.corr = "leave:" + dom + ":" + dev
	}
	if req == nil {
		return
	}
	for _, k := range []string{"reqID", "resID"} {
		if got, want := idOf(m, k), idOf(req, k); got != "" && want != "" && got != want {
			b.add(RuleRDPIDs.At(b.pathOf(k), "%s %s differs from the request's %s", k, got, want))
		}
	}
	if got, want := nonceOf(m), nonceOf(req); got != "" && want != "" && got != want {
		b.add(RuleRDPNonce.At(b.pathOf("nonce"), "nonce %s does not echo the request nonce %s (the SCE-GEN default is inferred to be an echo)", got, want))
	}
	if st == nil {
		return
	}
	if status == "Success" {
		if dom != "" && st.domainID != "" && dom != st.domainID {
			b.add(RuleRDPDomain.At(b.pathOf("userDomainId"), "userDomainId %s differs from the embedded leaveDomainRequest's domainID %s", dom, st.domainID))
		}
		if dev != "" && st.deviceID != "" && dev != st.deviceID {
			b.add(RuleRDPDevice.At(b.pathOf("deviceId"), "deviceId %s differs from the embedded leaveDomainRequest's deviceID %s", dev, st.deviceID))
		} else if dev != "" && st.devCertID != "" && dev != st.devCertID {
			b.add(RuleRDPDevice.At(b.pathOf("deviceId"), "deviceId %s differs from the SPKI hash %s of the device certificate", dev, st.devCertID))
		}
	}
	if st.predicted != "" && status != "" && !statusFits(st.predicted, status) {
		b.add(RuleExpectStatus.At(b.root()+"/@status", "the DEA answered %s, but %s predicts %s", status, st.why, st.predicted))
	}
	st.rdpResp, st.rdpStatus = true, status
	if b.rep != nil {
		st.rdpMAC = b.rep.mac
	}
	if status != "Success" || st.domainID == "" || st.deviceID == "" {
		return
	}
	// The DEA must now trigger every other RI that holds a context for (domain, device).
	key := st.domainID + "|" + st.deviceID
	set, _ := b.t.members.get(key)
	leavingRI := idOf(req, "reqID")
	if leavingRI == "" {
		leavingRI = st.riID
	}
	var others []string
	for ri := range set {
		if ri != leavingRI {
			others = append(others, ri)
		}
	}
	sort.Strings(others)
	delete(set, leavingRI)
	// The device has now left through leavingRI, so that RI holds no context any more: a trigger
	// still owed to it by an earlier leave through another RI is owed no longer. (When the
	// trigger's target RI is unknown, as in captures without endpoints, this is the only way the
	// expectation is met.)
	b.t.pending.del("fanout|" + key + "|" + leavingRI)
	for _, ri := range others {
		b.t.addPending(&Pending{Rule: RuleFanout.ID, Key: b.corr, DeviceID: st.deviceID, DomainID: st.domainID, RIID: ri,
			Since: b.o.Time, Deadline: b.o.Time.Add(b.t.opt.FanoutWindow)}, "fanout|"+key+"|"+ri)
	}
}

// statusFits says whether the DEA's actual status is consistent with the prediction. A verdict of
// Success admits InvalidDomain: the proxy's knowledge of User Domains is partial.
func statusFits(predicted, actual string) bool {
	if predicted == "Success" {
		return actual == "Success" || actual == "InvalidDomain"
	}
	return predicted == actual
}

func (b *obs) drmTrigger() {
	m := b.m
	dom := domainOf(m)
	devs := idsOf(m, "deviceID", "deviceIDs")
	nonce := nonceOf(m)
	if len(devs) > 0 {
		b.corr = "leave:" + dom + ":" + devs[0]
		for _, d := range devs[1:] {
			b.join("leave:" + dom + ":" + d)
		}
	} else {
		b.corr = "leave:" + dom + ":?"
	}
	b.join("drmtrigger:" + nonce)
	if b.o.Leg == LegDeviceRI {
		b.add(RuleTrgDirection.At(b.root(), "a drmTrigger on the device<->RI leg; it flows only from the DEA to an RI"))
	}
	if dom != "" {
		b.t.userDomains.put(dom, b.o.Time)
	}
	ri, _ := b.t.endpoints.get(b.o.Server)
	for _, d := range devs {
		b.t.addPending(&Pending{Rule: RuleTrigFollows.ID, Key: "leave:" + dom + ":" + d, DeviceID: d, DomainID: dom, RIID: ri,
			Since: b.o.Time, Deadline: b.o.Time.Add(b.t.opt.TriggerWindow)}, "follows|"+dom+"|"+d)
		// This trigger is the DEA's fan-out towards this RI.
		prefix := "fanout|" + dom + "|" + d + "|"
		if ri != "" {
			b.t.pending.del(prefix + ri)
		} else if ps := b.t.pendingKeys(prefix); len(ps) > 0 {
			b.t.pending.del(ps[0])
		}
		if ri != "" {
			if set, ok := b.t.members.get(dom + "|" + d); ok {
				delete(set, ri)
			}
		}
	}
}

// ---- token messages (seed 001) ----

func (b *obs) tokenDelivery() {
	m := b.m
	e := b.t.takeRequest(b.o)
	var req *decode.Message
	if e != nil && kindIs(e.req, "tokenRequest", "tokenConsumptionReport") {
		req = e.req
	}
	dev, riID, tdid, status := idOf(m, "deviceID"), idOf(m, "riID"), childText(m, "tokenDeliveryID"), statusOf(m)
	b.learnEndpoint(riID)
	// decode classifies the mode from the transport hint or the body; say so only when the
	// exchange proves it wrong.
	onePass := m.Variant == decode.TokenOnePass
	if req != nil {
		b.corr = e.corr
		if onePass {
			b.add(RuleTDRMode.AtSev(sevW, b.root(), "decoded as 1-pass, but it answers the %s on this exchange (2-pass)", req.Kind))
		}
	} else {
		b.corr = "token:" + dev + ":" + tdid
		if b.o.Exchange != "" && m.Variant != "" && !onePass {
			b.add(RuleTDRMode.AtSev(sevW, b.root(), "decoded as 2-pass (%s), but no TokenRequest or TokenConsumptionReport precedes it on this exchange: a 1-pass delivery must not carry a device nonce", m.Variant))
		}
	}
	answersReport := req != nil && kindIs(req, "tokenConsumptionReport")
	if status == "TokenConsumptionReportError" && !answersReport {
		b.add(RuleReportErr.At(b.root()+"/@status", "TokenConsumptionReportError answers %s, not a TokenConsumptionReport", kindOrNothing(req)))
	}
	if status != "Success" {
		b.tokenFailure(req, status)
		return
	}
	if req != nil {
		b.echo(req, "deviceID", RuleTDRDeviceEcho)
		b.echo(req, "riID", RuleTDRRIEcho)
		if got, want := nonceOf(m), nonceOf(req); want != "" && got != want {
			if got == "" {
				b.add(RuleTDRNonceEcho.At(b.root(), "the 2-pass response carries no nonce; the %s nonce was %s", req.Kind, want))
			} else {
				b.add(RuleTDRNonceEcho.At(b.pathOf("nonce"), "nonce %s differs from the %s nonce %s", got, req.Kind, want))
			}
		}
		if kindIs(req, "tokenRequest") {
			if want := childText(req, "tokenDeliveryID"); want != "" && tdid != "" && want != tdid {
				b.add(RuleTDIDMatch.At(b.pathOf("tokenDeliveryID"), "tokenDeliveryID %s differs from %s proposed in the TokenRequest", tdid, want))
			}
		}
	}
	if q := childText(m, "tokenQuantity"); q != "" && !answersReport {
		if n, ok := new(big.Int).SetString(strings.TrimPrefix(q, "+"), 10); ok && n.Sign() == 0 {
			b.add(RuleQtyZero.At(b.pathOf("tokenQuantity"), "tokenQuantity 0 acknowledges a consumption report, but this answers %s", kindOrNothing(req)))
		}
	}
	// Replay: a tokenDeliveryID the device already processed.
	replayed := false
	if tdid != "" && dev != "" {
		ds := b.t.tokenDevice(dev)
		if first, seen := ds.tdids[tdid]; seen {
			replayed = true
			b.add(RuleTDIDReplay.At(b.pathOf("tokenDeliveryID"), "tokenDeliveryID %s was already delivered to device %s at %s: the device must discard this response", tdid, short(dev), first.UTC().Format(time.RFC3339)))
		} else if b.rep == nil || b.rep.sig != fail {
			ds.tdids[tdid] = b.o.Time
			ds.order = append(ds.order, tdid)
			if len(ds.order) > b.t.opt.MaxTDIDs {
				delete(ds.tdids, ds.order[0])
				ds.order = ds.order[1:]
			}
		}
	}
	// The device discards a replayed or badly signed delivery, so its terms bind nobody.
	if dev != "" && !replayed && (b.rep == nil || b.rep.sig != fail) {
		b.tokenAccepted(req, dev, riID, tdid)
	}
	if len(ocspOf(m)) == 0 && dev != "" {
		ri, ok := b.t.regs.get(dev + "|" + riID)
		switch {
		case !ok:
			b.add(RuleNoOCSPXReg.AtSev(sevI, b.root(), "no ocspResponse; the device's registration with RI %s was not captured, so NoOCSPResponse cannot be checked", short(riID)))
		case !ri.noOCSP:
			b.add(RuleNoOCSPXReg.At(b.root(), "no ocspResponse, yet the device's registrationRequest to this RI (%s) did not carry NoOCSPResponse", ri.at.UTC().Format(time.RFC3339)))
		}
	}
	if chainNamed(m, "certificateChain", true) == nil {
		named := false
		if req != nil && req.Root != nil {
			if ext := req.Root.Child("extensions"); ext != nil {
				for x := range ext.EachNamed("extension") {
					if id := decode.IdentifierHash(findDesc(x, 3, "identifier", "keyIdentifier")); id != "" && id == riID {
						named = true
					}
				}
			}
		}
		if !named {
			b.add(RuleCertChainCond.At(b.root(), "no certificateChain, and no TokenRequest on this exchange named the RI's current key with PeerKeyIdentifier"))
		}
	}
}

// ---- token reporting (seed 001): terms, reports, failed runs ----

// tokenDevice returns the token state of dev, creating it.
func (t *Tracker) tokenDevice(dev string) *deviceState {
	ds, ok := t.devices.get(dev)
	if !ok {
		ds = &deviceState{tdids: map[string]time.Time{}}
		t.devices.put(dev, ds)
	}
	return ds
}

// lastTerms returns the newest delivery with a reporting URL from riID ("" or an entry without an
// RI matches any): reporting is a matter between the device and each RI.
func (ds *deviceState) lastTerms(riID string) *reportTerms {
	for i := len(ds.reporting) - 1; i >= 0; i-- {
		if rt := ds.reporting[i]; riID == "" || rt.riID == "" || rt.riID == riID {
			return rt
		}
	}
	return nil
}

func (ds *deviceState) termsOf(tdid, riID string) *reportTerms {
	if tdid == "" {
		return nil
	}
	for i := len(ds.reporting) - 1; i >= 0; i-- {
		if rt := ds.reporting[i]; rt.tdid == tdid && (riID == "" || rt.riID == "" || rt.riID == riID) {
			return rt
		}
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// timeField parses a dateTime child of m; zero when absent or malformed (decode reports that).
func timeField(m *decode.Message, name string) time.Time {
	v := strings.TrimSpace(childText(m, name))
	if v == "" {
		return time.Time{}
	}
	t, _, err := decode.ParseDateTime(v)
	if err != nil {
		return time.Time{}
	}
	return t
}

// tokenRiOf names the RI of a token run: the request's riID, the response's, else the RI known to
// serve this connection.
func (b *obs) tokenRiOf(req *decode.Message) string {
	if ri := idOf(req, "riID"); ri != "" {
		return ri
	}
	if ri := idOf(b.m, "riID"); ri != "" {
		return ri
	}
	ri, _ := b.t.endpoints.get(b.o.Server)
	return ri
}

// tokenFailure records a token run that a non-Success response ended (XBS-9.2.3-FAIL-TERMINATE),
// withdraws a report the RI refused, and judges NoTokenConsumptionReport.
func (b *obs) tokenFailure(req *decode.Message, status string) {
	dev := idOf(req, "deviceID")
	if dev == "" {
		dev = idOf(b.m, "deviceID") // a faulty failure body may still name it
	}
	if dev == "" {
		dev = b.o.DeviceID
	}
	ri := b.tokenRiOf(req)
	if req != nil && dev != "" {
		ds := b.t.tokenDevice(dev)
		if n := nonceOf(req); n != "" {
			if _, seen := ds.failed[n]; !seen {
				if ds.failed == nil {
					ds.failed = map[string]failedRun{}
				}
				ds.failedSeq = append(ds.failedSeq, n)
				if len(ds.failedSeq) > maxFailedRuns {
					delete(ds.failed, ds.failedSeq[0])
					ds.failedSeq = ds.failedSeq[1:]
				}
			}
			ds.failed[n] = failedRun{kind: req.Kind, status: status, at: b.o.Time}
		}
		if kindIs(req, "tokenConsumptionReport") {
			b.refuseReport(ds, dev, nonceOf(req))
		}
	}
	if status == "NoTokenConsumptionReport" {
		b.noReportTiming(dev, ri)
	}
}

// refuseReport forgets a report the RI answered with a failure: it did not count as received, and
// the RI owes no extended deadline for it.
func (b *obs) refuseReport(ds *deviceState, dev, n string) {
	if n == "" {
		return
	}
	for _, rt := range ds.reporting {
		if rt.reportNonce == n {
			rt.reportedAt, rt.reportNonce = rt.prevReportedAt, rt.prevReportNonce
			rt.prevReportedAt, rt.prevReportNonce = time.Time{}, ""
		}
	}
	if w := ds.advance; w != nil && w.nonce == n {
		ds.advance = nil
		b.t.pending.del("ltct|" + dev + "|" + w.riID)
	}
}

// noReportTiming judges NoTokenConsumptionReport (XBS-9.2.3-NOREPORT-TIMING) against the last
// delivery from the same RI that asked for reports. When the delivery set no
// latestTokenConsumptionTime its latestReportingTime stands in: a report was overdue all the same.
func (b *obs) noReportTiming(dev, ri string) {
	path := b.root() + "/@status"
	if dev == "" {
		b.add(RuleNoReportTiming.AtSev(sevI, path, "NoTokenConsumptionReport, but neither the request nor the connection names the device: its reporting history cannot be checked"))
		return
	}
	ds, ok := b.t.devices.get(dev)
	if !ok || (ds.deliveries == 0 && len(ds.reporting) == 0) {
		b.add(RuleNoReportTiming.AtSev(sevI, path, "NoTokenConsumptionReport for device %s, whose earlier token deliveries were not captured: whether a report was overdue cannot be judged", short(dev)))
		return
	}
	last := ds.lastTerms(ri)
	if last == nil {
		b.add(RuleNoReportTiming.At(path, "NoTokenConsumptionReport, but none of the %d captured deliveries to device %s from RI %s carried a tokenReportingURL: the device owed no report", ds.deliveries, short(dev), orDash(short(ri))))
		return
	}
	var why []string
	deadline, what := last.ltct, "latestTokenConsumptionTime"
	if deadline.IsZero() {
		deadline, what = last.latest, "latestReportingTime (the delivery set no latestTokenConsumptionTime)"
	}
	switch {
	case deadline.IsZero():
		why = append(why, "that delivery set no latestTokenConsumptionTime or latestReportingTime, so no report could be overdue")
	case !b.o.Time.After(deadline):
		why = append(why, "its "+what+" "+stamp(deadline)+" has not passed at "+stamp(b.o.Time))
	}
	if !last.reportedAt.IsZero() {
		why = append(why, "a tokenConsumptionReport from the device to this RI was seen after it, at "+stamp(last.reportedAt))
	}
	if len(why) > 0 {
		b.add(RuleNoReportTiming.At(path, "NoTokenConsumptionReport is implausible against the last delivery with a reporting URL (%s at %s): %s", last.tdid, stamp(last.at), strings.Join(why, "; ")))
	}
}

// tokenDeviceMessage applies the token rules to a tokenRequest or tokenConsumptionReport: reuse of
// a failed run's nonce, and for a report its routing, timeliness and the deadline it earns.
func (b *obs) tokenDeviceMessage() {
	m := b.m
	dev, n, ri := idOf(m, "deviceID"), nonceOf(m), idOf(m, "riID")
	if dev == "" {
		return
	}
	ds, ok := b.t.devices.get(dev)
	if !ok {
		if kindIs(m, "tokenConsumptionReport") {
			b.add(RuleReportTimely.At(b.root(), "no delivery to device %s with a tokenReportingURL was captured: the report's routing and timeliness cannot be judged", short(dev)))
		}
		return
	}
	if fr, bad := ds.failed[n]; bad && n != "" {
		b.add(RuleFailTerminate.At(b.pathOf("nonce"), "nonce %s belongs to the %s run that ended with %s at %s: after a non-Success status both ends must discard the run's nonces, yet this %s reuses it", n, fr.kind, fr.status, stamp(fr.at), m.Kind))
	}
	if !kindIs(m, "tokenConsumptionReport") {
		return
	}
	last := ds.lastTerms(ri)
	if last == nil {
		b.add(RuleReportTimely.At(b.root(), "no delivery to device %s from RI %s with a tokenReportingURL was captured: the report's routing and timeliness cannot be judged", short(dev), orDash(short(ri))))
		return
	}
	tdid := childText(m, "tokenDeliveryID")
	named := ds.termsOf(tdid, ri)
	b.reportRouting(last, named)

	// The window of the delivery the report names, when captured; else the current one.
	ref, refWhy := named, "the delivery it reports"
	if ref == nil {
		ref, refWhy = last, "the last delivery with a reporting URL"
		if tdid != "" {
			refWhy += " (its tokenDeliveryID " + tdid + " names no captured delivery)"
		}
	}
	at := b.o.Time
	class := "on time"
	switch {
	case !ref.earliest.IsZero() && at.Before(ref.earliest):
		class = "early"
	case !ref.latest.IsZero() && at.After(ref.latest):
		class = "late"
	}
	window := "window " + orDash(stampOrEmpty(ref.earliest)) + " .. " + orDash(stampOrEmpty(ref.latest))
	extra := ""
	if !ref.ltct.IsZero() && at.After(ref.ltct) {
		extra = "; also after its latestTokenConsumptionTime " + stamp(ref.ltct) + ", so the device was blocked"
	}
	b.add(RuleReportTimely.At(b.root(), "report at %s is %s against %s, %s (%s)%s", stamp(at), class, refWhy, ref.tdid, window, extra))

	// The report counts as received for the current reporting period until the RI refuses it.
	last.prevReportedAt, last.prevReportNonce = last.reportedAt, last.reportNonce
	last.reportedAt, last.reportNonce = at, n

	// An on-time report earns a later consumption deadline; an early one may not (seed 001), and a
	// late one is the RI's call.
	key := "ltct|" + dev + "|" + last.riID
	if w := ds.advance; w != nil {
		b.t.pending.del("ltct|" + dev + "|" + w.riID)
		ds.advance = nil
	}
	if class != "on time" || last.ltct.IsZero() {
		return
	}
	ds.advance = &ltctWait{riID: last.riID, nonce: n, tdid: ref.tdid, reportAt: at, prev: last.ltct}
	if last.ltct.After(at) {
		b.t.addPending(&Pending{Rule: RuleLTCTAdvance.ID, Key: b.corr, DeviceID: dev, RIID: last.riID, Since: at, Deadline: last.ltct}, key)
	}
}

func stampOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return stamp(t)
}

// reportRouting compares the URL the report was POSTed to with the last tokenReportingURL
// (XBS-9.2.3-REPORT-ROUTING).
func (b *obs) reportRouting(last, named *reportTerms) {
	if b.o.URL == "" || last.url == "" {
		return
	}
	diff := urlDiff(b.o.URL, last.url)
	if diff == "" {
		return
	}
	note := ""
	if named != nil && named != last && named.url != "" && urlDiff(b.o.URL, named.url) == "" {
		note = "; it is the URL of the older delivery " + named.tdid + " it reports, but the RI moved reporting since"
	}
	b.add(RuleReportRouting.At(b.root(), "report POSTed to %s, but the last delivery with a reporting URL (%s at %s) named %s (%s differ)%s", b.o.URL, last.tdid, stamp(last.at), last.url, diff, note))
}

// urlDiff names the parts (scheme, host, path) in which the observed URL differs from the wanted
// one; "" when they agree. Parts either side lacks (a relative URL) are not compared, and default
// ports are equal to none.
func urlDiff(observed, want string) string {
	uo, err1 := url.Parse(observed)
	uw, err2 := url.Parse(want)
	if err1 != nil || err2 != nil {
		if observed == want {
			return ""
		}
		return "the URLs as written"
	}
	var d []string
	if uo.Scheme != "" && uw.Scheme != "" && !strings.EqualFold(uo.Scheme, uw.Scheme) {
		d = append(d, "scheme")
	}
	if uo.Host != "" && uw.Host != "" && !strings.EqualFold(hostPort(uo), hostPort(uw)) {
		d = append(d, "host")
	}
	// "" and "/" are the same path; otherwise paths are case-sensitive.
	if strings.TrimSuffix(uo.EscapedPath(), "/") != strings.TrimSuffix(uw.EscapedPath(), "/") {
		d = append(d, "path")
	}
	return strings.Join(d, ", ")
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		default:
			port = "80"
		}
	}
	return u.Hostname() + ":" + port
}

// tokenAccepted records a Success delivery the device accepts: its reporting terms, whether it
// extends the deadline an on-time report earned (XBS-9.2.3-LTCT-ADVANCE), and a nonce revived
// from a failed run (XBS-9.2.3-FAIL-TERMINATE).
func (b *obs) tokenAccepted(req *decode.Message, dev, riID, tdid string) {
	m := b.m
	ds := b.t.tokenDevice(dev)
	ds.deliveries++
	if n := nonceOf(m); n != "" && req == nil {
		if fr, bad := ds.failed[n]; bad {
			b.add(RuleFailTerminate.At(b.pathOf("nonce"), "this delivery answers no request on its exchange, yet carries nonce %s of the %s run that ended with %s at %s: a failed run's nonces must be discarded", n, fr.kind, fr.status, stamp(fr.at)))
		}
	}
	u := strings.TrimSpace(childText(m, "tokenReportingURL"))
	if u == "" {
		return // no reporting asked: the deadline in force stays (seed 001, latestTokenConsumptionTime)
	}
	rt := &reportTerms{tdid: tdid, riID: riID, url: u, at: b.o.Time,
		earliest: timeField(m, "earliestReportingTime"), latest: timeField(m, "latestReportingTime"), ltct: timeField(m, "latestTokenConsumptionTime")}
	if w := ds.advance; w != nil && (w.riID == "" || riID == "" || w.riID == riID) {
		ds.advance = nil
		b.t.pending.del("ltct|" + dev + "|" + w.riID)
		// A delivery without a consumption deadline does not block the device: nothing to extend.
		if !rt.ltct.IsZero() && !rt.ltct.After(w.prev) {
			late := ""
			if b.o.Time.After(w.prev) {
				late = ", and it arrived only after that deadline had passed"
			}
			b.add(RuleLTCTAdvance.At(b.pathOf("latestTokenConsumptionTime"), "the device reported on time at %s (nonce %s), yet this delivery's latestTokenConsumptionTime %s does not extend the previous %s%s: consumption blocks although reports are on time", stamp(w.reportAt), w.nonce, stamp(rt.ltct), stamp(w.prev), late))
		}
	}
	ds.reporting = append(ds.reporting, rt)
	if len(ds.reporting) > maxReportTerms {
		ds.reporting = ds.reporting[1:]
	}
}

func kindOrNothing(m *decode.Message) string {
	if m == nil {
		return "no request (1-pass)"
	}
	return "a " + m.Kind
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ---- expectations ----

func (t *Tracker) addPending(p *Pending, key string) {
	if old, ok := t.pending.get(key); ok {
		p.Since = old.Since // a repeat does not extend the deadline
		p.Deadline = old.Deadline
	}
	t.pending.put(key, p)
}

func (t *Tracker) pendingKeys(prefix string) []string {
	var out []string
	t.pending.each(func(k string, _ *Pending) bool {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
		return true
	})
	return out
}

func (t *Tracker) pendingFor(prefix string) []*Pending {
	var out []*Pending
	for _, k := range t.pendingKeys(prefix) {
		p, _ := t.pending.get(k)
		out = append(out, p)
	}
	return out
}

// satisfyFollows records that a ROAP leaveDomain trigger (or the device's leave itself) reached
// device for domain. An unknown device satisfies the expectation only when it is the only one
// outstanding for the domain.
func (t *Tracker) satisfyFollows(domain, device string) {
	if device != "" {
		t.pending.del("follows|" + domain + "|" + device)
		return
	}
	if ks := t.pendingKeys("follows|" + domain + "|"); len(ks) == 1 {
		t.pending.del(ks[0])
	}
}

// Tick returns, and forgets, the expectations whose deadline has passed by now, each with the
// late finding to report (DOM-7.6.2-ROAP-TRIGGER-FOLLOWS, DOM-7.5-FANOUT, XBS-9.2.3-LTCT-ADVANCE). The proxy calls it
// periodically; inspect calls it once at the end of a capture.
func (t *Tracker) Tick(now time.Time) []Pending {
	t.mu.Lock()
	defer t.mu.Unlock()
	var due []string
	var out []Pending
	t.pending.each(func(k string, p *Pending) bool {
		if now.After(p.Deadline) {
			due = append(due, k)
			q := *p
			q.Finding = lateFinding(&q)
			out = append(out, q)
		}
		return true
	})
	for _, k := range due {
		t.pending.del(k)
	}
	return out
}

func lateFinding(p *Pending) decode.Finding {
	win := p.Deadline.Sub(p.Since)
	switch p.Rule {
	case RuleLTCTAdvance.ID:
		return RuleLTCTAdvance.At("", "device %s reported its token consumption on time at %s, but no delivery with a tokenReportingURL from RI %s extended latestTokenConsumptionTime before it passed at %s: the device has to stop consuming tokens", short(p.DeviceID), p.Since.UTC().Format(time.RFC3339), short(p.RIID), p.Deadline.UTC().Format(time.RFC3339))
	case RuleFanout.ID:
		return RuleFanout.At("", "the DEA did not send an rdpProxyLeaveUserDomain trigger for device %s / domain %s to RI %s (which holds a context) within %s of the successful proxy leave at %s", short(p.DeviceID), p.DomainID, short(p.RIID), win, p.Since.UTC().Format(time.RFC3339))
	default:
		return RuleTrigFollows.At("", "no ROAP leaveDomain trigger for domain %s reached device %s within %s of the DEA's drmTrigger at %s", p.DomainID, short(p.DeviceID), win, p.Since.UTC().Format(time.RFC3339))
	}
}

// Outstanding lists the expectations not yet met and not yet due, oldest first.
func (t *Tracker) Outstanding() []Pending {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Pending
	t.pending.each(func(_ string, p *Pending) bool {
		out = append(out, *p)
		return true
	})
	return out
}

// Stats reports how much state the tracker holds (for the UI and for tests of its bounds).
func (t *Tracker) Stats() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return map[string]int{
		"exchanges": t.exchanges.len(), "sessions": t.sessions.len(), "devices": t.devices.len(),
		"triggers": t.triggers.len(), "leaves": t.leaves.len(), "bodies": t.bodies.len(),
		"pending": t.pending.len(), "members": t.members.len(), "endpoints": t.endpoints.len(),
	}
}
