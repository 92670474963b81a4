package verify

import (
	"crypto/x509"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/roapproxy/roapproxy/decode"
)

// Options shapes a Verifier. Zero values take the defaults.
type Options struct {
	// Clock is "now" for messages checked without a time; default time.Now. The message time,
	// not the wall clock, judges certificate validity and OCSP freshness, so captures replayed
	// later (inspect --at) are judged as of their capture.
	Clock func() time.Time
	// OCSPSkew is the clock difference tolerated around thisUpdate / nextUpdate (default 5m).
	OCSPSkew time.Duration
	// OCSPMaxAge bounds the age of a response without nextUpdate (default 24h).
	OCSPMaxAge time.Duration
	// Tracker shapes the cross-message state of Observe.
	Tracker TrackerOptions
}

// Verifier runs the per-message checks (signatures, MACs, chains, OCSP) and, through Observe,
// the cross-message rules of its Tracker. It is safe for concurrent use.
type Verifier struct {
	trust   *Trust
	opts    Options
	tracker *Tracker

	cacheMu       sync.Mutex
	seed          maphash.Seed
	sigs          *bounded[uint64, *sigMemo] // signature checks of certificates and OCSP responses
	ocspParsed    *bounded[uint64, ocspCacheEntry]
	certHashMemos *bounded[uint64, *certHashMemo]     // OCSP CertID hashes of issuers and responders
	gapTexts      *bounded[*x509.Certificate, string] // OCSP-COVERAGE messages, by certificate
}

// New returns a Verifier using trust (nil: an empty Trust, which still learns certificates).
func New(trust *Trust, o Options) *Verifier {
	if trust == nil {
		trust = NewTrust()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.OCSPSkew == 0 {
		o.OCSPSkew = 5 * time.Minute
	}
	if o.OCSPMaxAge == 0 {
		o.OCSPMaxAge = 24 * time.Hour
	}
	if o.Tracker.Clock == nil {
		o.Tracker.Clock = o.Clock
	}
	return &Verifier{
		trust:         trust,
		opts:          o,
		tracker:       NewTracker(o.Tracker),
		seed:          maphash.MakeSeed(),
		sigs:          newBounded[uint64, *sigMemo](2048, true),
		ocspParsed:    newBounded[uint64, ocspCacheEntry](512, true),
		certHashMemos: newBounded[uint64, *certHashMemo](512, true),
		gapTexts:      newBounded[*x509.Certificate, string](256, true),
	}
}

// Trust returns the verifier's trust store.
func (v *Verifier) Trust() *Trust { return v.trust }

// Tracker returns the verifier's cross-message state (for Tick and Outstanding).
func (v *Verifier) Tracker() *Tracker { return v.tracker }

// Context is what Check knows about a message beyond its bytes. Every field is optional.
type Context struct {
	// Time is when the message was seen; it judges validity and freshness (zero: the clock).
	Time time.Time
	// Role is the sender when the message does not say (decode usually does).
	Role decode.Role
	// Request is the request this message answers, when known: a registrationResponse's signature
	// covers it, its nonce is the OCSP nonce, and its NoOCSPResponse extension excuses missing
	// OCSP responses.
	Request *decode.Message
	// DeviceHello and RIHello are the bodies of the registration session a registrationRequest
	// belongs to; its signature covers them.
	DeviceHello, RIHello []byte
	// SignerID is the sender's identifier when the message does not carry one: the riHello's riID
	// for a registrationResponse, the deviceHello's deviceID for a registrationRequest. It selects
	// a cached chain and is compared with the leaf certificate.
	SignerID string
}

// report is Check's verdict in a form the Tracker can use.
type report struct {
	findings []decode.Finding
	sig      tri // RSA signature of the message
	mac      tri // SCE MAC
	// For an RDP Proxy Leave request: the verdicts the DEA's status must follow (seed 000).
	devChain tri // device chain validity (links, time, CA, anchor)
	devKP    tri // device key purposes (.2 and not .4)
	ldrSig   tri // embedded leaveDomainRequest signature
	devID    string
}

// Check runs the per-message checks: RSA signatures (ROAP, token), SCE MACs, signed-trigger
// digests, certificate chains and OCSP responses. It reads earlier messages only through ctx, so
// it keeps no state (apart from learning valid certificate chains into the Trust).
func (v *Verifier) Check(m *decode.Message, ctx Context) []decode.Finding {
	return v.check(m, ctx).findings
}

func (v *Verifier) check(m *decode.Message, ctx Context) (r *report) {
	r = &report{}
	if m == nil || m.Root == nil {
		return r
	}
	defer func() {
		// A verifier bug must not take the proxy down with it: report it on the message.
		if p := recover(); p != nil {
			r = &report{findings: []decode.Finding{RuleInternal.At("", "internal verifier error: %v", p)}}
		}
	}()
	if ctx.Time.IsZero() {
		ctx.Time = v.opts.Clock()
	}
	switch m.Family {
	case decode.FamilyROAP, decode.FamilyToken:
		v.checkSigned(m, ctx, r)
	case decode.FamilyTrigger:
		for _, f := range checkTriggerSig(m) {
			// decode already tells how to check a signed leaveDomain trigger's MAC.
			if f.Rule == RuleTrigMAC.ID && m.Has("ROAP-LD-TRIGGER-SIG") {
				continue
			}
			r.findings = append(r.findings, f)
		}
	case decode.FamilySCE:
		v.checkSCE(m, ctx, r)
	}
	r.findings = dedupe(m, r.findings)
	return r
}

// dedupe drops repeats, and findings of rules another package (decode) owns when that package
// already reported the same rule at the same severity for this message: both sides implement
// parts of some spec rules (DOM-7.5.2-DEVCHAIN-KP, DOM-7.5.2-RIID-MATCH, XBS-9.2.3-MODE), and a
// person should read each verdict once.
func dedupe(m *decode.Message, fs []decode.Finding) []decode.Finding {
	if len(fs) == 0 {
		return fs
	}
	type key struct {
		rule string
		sev  decode.Severity
	}
	// A message has a handful of findings: scanning them beats building two maps per call,
	// which Track makes twice per message. Maps take over for long lists.
	const small = 16
	var theirs map[key]bool
	if len(m.Findings) > small {
		theirs = make(map[key]bool, len(m.Findings))
		for _, f := range m.Findings {
			theirs[key{f.Rule, f.Severity}] = true
		}
	}
	decodeSaid := func(f decode.Finding) bool {
		if theirs != nil {
			return theirs[key{f.Rule, f.Severity}]
		}
		for _, g := range m.Findings {
			if g.Rule == f.Rule && g.Severity == f.Severity {
				return true
			}
		}
		return false
	}
	var seen map[decode.Finding]bool
	if len(fs) > small {
		seen = make(map[decode.Finding]bool, len(fs))
	}
	out := fs[:0]
	for _, f := range fs {
		if seen != nil {
			if seen[f] {
				continue
			}
			seen[f] = true
		} else if slices.Contains(out, f) {
			continue
		}
		if decodeSaid(f) {
			if r, ok := decode.LookupRule(f.Rule); ok && r.Package != "verify" {
				continue
			}
		}
		out = append(out, f)
	}
	return out
}

// signerChain judges the chain that vouches for the sender of m: the one it carries, or the one
// remembered for its identifier. It returns nil when neither is known.
func (v *Verifier) signerChain(m *decode.Message, role decode.Role, at time.Time, proxyLeave bool, extra *decode.Chain, signerID string) (*chainResult, []decode.Finding) {
	idName := "riID"
	if role == decode.RoleDevice {
		idName = "deviceID"
	}
	// The caller's identifier wins: for registration messages decode derives the ID from the
	// very chain it would be compared with.
	id := signerID
	if id == "" {
		id = idOf(m, idName)
	}
	o := chainOpts{role: role, at: at, proxyLeave: proxyLeave, wantID: id, wantIDName: idName}
	if m.Root != nil {
		o.wantIDNode = m.Root.ChildFold(idName)
	}
	ch := chainNamed(m, "certificateChain", true)
	if ch == nil {
		ch = extra
	}
	if ch != nil && len(ch.Certs) > 0 {
		o.path = ch.Path
		cr := v.walkChain(ch.Certs, o)
		if cr.valid(v.trust.hasAnchors()) {
			v.trust.Learn(cr.path)
		}
		return cr, cr.findings
	}
	cached := v.trust.Chain(id)
	if cached == nil {
		return nil, nil
	}
	o.path, o.cached = "", true
	cr := v.walkChain(cached, o)
	var fs []decode.Finding
	for _, f := range cr.findings {
		if f.Severity == decode.SevInfo {
			continue // already said when the chain was learned
		}
		f.Message = "cached chain of " + id + ": " + f.Message
		fs = append(fs, f)
	}
	return cr, fs
}

func (v *Verifier) checkSigned(m *decode.Message, ctx Context, r *report) {
	role := roleOf(m, ctx.Role)
	if role != decode.RoleDevice && role != decode.RoleRI {
		return
	}
	cr, fs := v.signerChain(m, role, ctx.Time, false, nil, ctx.SignerID)
	r.findings = append(r.findings, fs...)

	if topChild(m.Root, "signature") != nil && kindIs(m, signedKinds...) {
		r.sig, fs = v.checkRSA(m, ctx, role, cr, RuleSig)
		r.findings = append(r.findings, fs...)
	}

	if role == decode.RoleRI {
		r.findings = append(r.findings, v.checkOCSPOf(m, ctx, cr)...)
	}
}

// checkRSA checks the RSA signature of m with the leaf of cr, building the signed input.
func (v *Verifier) checkRSA(m *decode.Message, ctx Context, role decode.Role, cr *chainResult, rl decode.Rule) (tri, []decode.Finding) {
	// The path is built only for a finding.
	sigPath := func() string { return decode.PathOf(topChild(m.Root, "signature")) }
	if kindIs(m, "TokenDeliveryResponse") && rl.ID == RuleSig.ID {
		rl = RuleTDRSig
	}
	who := "RI"
	idName := "riID"
	if role == decode.RoleDevice {
		who, idName = "device", "deviceID"
	}
	if cr == nil || len(cr.path) == 0 {
		id := idOf(m, idName)
		if id == "" {
			id = ctx.SignerID
		}
		return unknown, []decode.Finding{RuleSigNoKey.At(sigPath(), "no certificate chain in the message and none cached for %s %s: the %s signature cannot be checked", idName, orDash(id), who)}
	}
	var prefix []byte
	switch {
	case kindIs(m, "registrationRequest"):
		if ctx.DeviceHello == nil || ctx.RIHello == nil {
			return unknown, []decode.Finding{RuleSigNoContext.At(sigPath(), "the registrationRequest signature covers the deviceHello and riHello of session %s, which were not captured", orDash(sessionOf(m)))}
		}
		prefix = append(append(prefix, ctx.DeviceHello...), ctx.RIHello...)
	case kindIs(m, "registrationResponse"):
		if ctx.Request == nil || !kindIs(ctx.Request, "registrationRequest") {
			return unknown, []decode.Finding{RuleSigNoContext.At(sigPath(), "the registrationResponse signature covers the registrationRequest of session %s, which was not captured", orDash(sessionOf(m)))}
		}
		prefix = ctx.Request.Raw
	}
	return verifyRSASig(rsaSigInput{m: m, signer: cr.path[0], prefix: prefix, rule: rl, who: who})
}

// checkOCSPOf judges the OCSP responses of an RI message against its chain, and their absence
// from a registrationResponse.
func (v *Verifier) checkOCSPOf(m *decode.Message, ctx Context, cr *chainResult) []decode.Finding {
	blobs := ocspOf(m)
	isReg := kindIs(m, "registrationResponse")
	if len(blobs) == 0 {
		if !isReg || statusOf(m) != "Success" {
			return nil
		}
		path := "/" + m.Root.Local
		switch {
		case ctx.Request == nil:
			return []decode.Finding{RuleOCSPMissing.AtSev(sevW, path, "registrationResponse without ocspResponse; the registrationRequest was not captured, so whether the device asked for NoOCSPResponse is unknown")}
		case decode.HasExtension(ctx.Request.Root, "NoOCSPResponse"):
			return nil
		default:
			return []decode.Finding{RuleOCSPMissing.At(path, "registrationResponse without ocspResponse although the registrationRequest did not carry NoOCSPResponse")}
		}
	}
	if cr == nil || len(cr.path) == 0 {
		return []decode.Finding{RuleOCSPResponder.AtSev(sevI, blobs[0].Path, "no RI certificate is known (no chain, none cached): the OCSP responses cannot be judged")}
	}
	in := ocspInput{blobs: blobs, chain: cr.path, anchored: cr.anchored, at: ctx.Time}
	if isReg && ctx.Request != nil {
		if nonce, ok := b64(nonceOf(ctx.Request)); ok {
			in.nonce, in.wantNonce = nonce, true
		}
	}
	ov := v.judgeOCSP(in)
	fs := ov.findings
	if kindIs(m, "TokenDeliveryResponse") && ov.problems > 0 {
		fs = append(fs, RuleTDROCSPGood.At(blobs[0].Path, "the OCSP set does not show a good, time-valid status for the RI chain (%d problem(s) above): the device must not accept these tokens", ov.problems))
	}
	return fs
}

// checkSCE checks an SCE/RDP message: its MAC, the sender's optional chain, and for a Proxy Leave
// request the embedded leaveDomainRequest as the DEA must judge it (seed 000 §7.5.2).
func (v *Verifier) checkSCE(m *decode.Message, ctx Context, r *report) {
	reqID, resID := idOf(m, "reqID"), idOf(m, "resID")
	macRule := RuleMAC
	if kindIs(m, "drmTrigger") {
		macRule = RuleTrgMAC
	}
	var fs []decode.Finding
	r.mac, fs = v.verifyMAC(m, reqID, resID, macRule)
	r.findings = append(r.findings, fs...)

	role := roleOf(m, ctx.Role)
	if ch := chainNamed(m, "certificateChain", true); ch != nil {
		want := reqID
		if role == decode.RoleDEA {
			want = resID
		}
		name := map[bool]string{true: "resID", false: "reqID"}[role == decode.RoleDEA]
		cr := v.walkChain(ch.Certs, chainOpts{path: ch.Path, role: role, at: ctx.Time, wantID: want, wantIDName: name, wantIDPath: "/" + m.Root.Local + "/" + name})
		r.findings = append(r.findings, cr.findings...)
		if cr.valid(v.trust.hasAnchors()) {
			v.trust.Learn(cr.path)
		}
	}

	if !kindIs(m, "rdpProxyLeaveUserDomainRequest") {
		return
	}
	ldr := nestedLDR(m)
	if ldr == nil || ldr.Root == nil {
		return
	}
	prefix := func(fs []decode.Finding) []decode.Finding {
		for i := range fs {
			if fs[i].Path == "" || strings.HasPrefix(fs[i].Path, "/"+m.Root.Local+"/") {
				continue
			}
			fs[i].Path = ldr.NestedPath + fs[i].Path
		}
		return fs
	}
	// The device chain: the embedded request's own, else deviceCertificateChain (seed 000).
	extra := chainNamed(m, "deviceCertificateChain", false)
	cr, cfs := v.signerChain(ldr, decode.RoleDevice, ctx.Time, true, extra, "")
	r.findings = append(r.findings, prefix(cfs)...)
	r.devChain, r.devKP, r.ldrSig = unknown, unknown, unknown
	if cr != nil && len(cr.path) > 0 {
		r.devID = KeyID(cr.path[0])
		r.devKP = pass
		if !cr.kpOK {
			r.devKP = fail
		}
		switch {
		case !cr.linksOK || !cr.timeOK || !cr.caOK:
			r.devChain = fail
		case cr.anchored:
			r.devChain = pass
		}
		if r.devChain == fail {
			chPath := ""
			if c := chainNamed(ldr, "certificateChain", true); c != nil {
				chPath = ldr.NestedPath + c.Path
			} else if extra != nil {
				chPath = extra.Path
			}
			r.findings = append(r.findings, RuleDevChainValid.At(chPath, "the device chain of the proxied leave does not validate (%s): the DEA must answer InvalidCertificateChain", strings.Join(cr.reasons, ", ")))
		}
	}
	var sfs []decode.Finding
	r.ldrSig, sfs = v.checkRSA(ldr, Context{Time: ctx.Time, Role: decode.RoleDevice}, decode.RoleDevice, cr, RuleLDRSig)
	r.findings = append(r.findings, prefix(sfs)...)
}

// Result is what Track returns for one observation.
type Result struct {
	Findings []decode.Finding `json:"findings"`
	// Correlation names the flow this message belongs to ("reg:<sessionId>",
	// "token:<deviceID>:<nonce>", "leave:<domainID>:<deviceID>", …) so a UI can draw related
	// messages as one exchange.
	Correlation string `json:"correlation,omitempty"`
	// Joins lists other correlation keys that this observation shows to be the same flow (a
	// request's triggerNonce joins the trigger's key; an riHello joins its deviceHello).
	Joins []string `json:"joins,omitempty"`
}

// Observe runs Check with what the Tracker knows about earlier messages, then the Tracker's
// cross-message rules, and returns all findings. Observe each message once: observing the same
// delivery twice looks like a replay (for a message a rule rewrote, Check the rewritten one).
func (v *Verifier) Observe(o Observation) []decode.Finding { return v.Track(o).Findings }

// Track is Observe returning the correlation key too.
func (v *Verifier) Track(o Observation) Result {
	if o.Message == nil {
		return Result{}
	}
	if o.Time.IsZero() {
		o.Time = v.opts.Clock()
	}
	o = v.tracker.normalize(o)
	ctx := v.tracker.contextFor(o)
	rep := v.check(o.Message, ctx)
	res := v.tracker.observeSafe(o, rep)
	res.Findings = dedupe(o.Message, append(rep.findings, res.Findings...))
	return res
}

// String describes a verdict for debugging.
func (r *report) String() string {
	return fmt.Sprintf("sig=%s mac=%s devChain=%s devKP=%s ldrSig=%s findings=%d", r.sig, r.mac, r.devChain, r.devKP, r.ldrSig, len(r.findings))
}
