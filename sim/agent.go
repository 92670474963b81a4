package sim

import (
	"context"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	d "github.com/roapproxy/roapproxy/decode"
)

// AgentFaults make a DRM Agent misbehave. The zero value is a correct agent.
type AgentFaults struct {
	WrongNonce   bool // answer a trigger with a triggerNonce other than the trigger's nonce
	BadSignature bool // flip a bit of every signature after signing
	StaleTime    bool // put a request time two days in the past
	OmitChain    bool // never send the certificate chain
}

// AgentConfig configures a simulated DRM Agent.
type AgentConfig struct {
	Identity  *Identity
	Roots     []*x509.Certificate // trust anchors for RI chains and OCSP
	Transport http.RoundTripper   // the HTTP client's transport (a recorder, a proxy …)
	Clock     func() time.Time
	// CacheChains leaves the device chain out of requests to an RI that announced
	// CertificateCaching (the RI keeps the chain from registration).
	CacheChains bool
	// NoOCSP asks RIs for NoOCSPResponse at registration.
	NoOCSP bool
	Log    func(string)
}

// StatusError is a ROAP response whose status is not Success.
type StatusError struct {
	Kind   string
	Status string
}

func (e *StatusError) Error() string { return fmt.Sprintf("%s: status %s", e.Kind, e.Status) }

// IsStatus reports whether err is a StatusError with the given status.
func IsStatus(err error, st string) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == st
}

// InstalledRO is a Rights Object the agent has verified and unwrapped.
type InstalledRO struct {
	ID, ContentID, RIID string
	CEK                 []byte
}

// TokenDelivery is a verified TokenDeliveryResponse.
type TokenDelivery struct {
	ID           string
	RIID         string
	Quantity     int
	ReportingURL string
	Earliest     time.Time
	Latest       time.Time
	LTCT         time.Time
	Movable      bool
	DomainID     string
	OnePass      bool
}

// Agent is a simulated DRM Agent (device). It verifies everything it receives: signatures,
// chains, OCSP, nonce, deviceID and riID echoes, RO and domain key MACs, token replays. Like a
// device, it runs one protocol at a time: drive it from one goroutine (the getters, SetFaults
// and SetClock may be called from anywhere).
type Agent struct {
	cfg    AgentConfig
	id     string
	client *http.Client
	logBook

	mu         sync.Mutex
	faults     AgentFaults
	clock      func() time.Time
	ris        map[string]*agentRI // riID → context
	byBase     map[string]string   // RI base URL → riID
	domains    map[string]*agentDomain
	ros        map[string]*InstalledRO
	tokens     int
	seenTDIDs  map[string]bool
	deliveries map[string]*TokenDelivery
}

type agentRI struct {
	id      string
	base    string
	chain   []*x509.Certificate
	ocsp    [][]byte
	caching bool
	noOCSP  bool
}

type agentDomain struct {
	key []byte
	ris map[string]bool
}

// NewAgent makes an agent.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if cfg.Identity == nil {
		return nil, errors.New("sim: agent needs an identity")
	}
	if cfg.Transport == nil {
		t, err := newTransport("")
		if err != nil {
			return nil, err
		}
		cfg.Transport = t
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	a := &Agent{cfg: cfg, id: cfg.Identity.ID(), client: &http.Client{Transport: cfg.Transport, Timeout: 30 * time.Second},
		clock: cfg.Clock, ris: map[string]*agentRI{}, byBase: map[string]string{}, domains: map[string]*agentDomain{},
		ros: map[string]*InstalledRO{}, seenTDIDs: map[string]bool{}, deliveries: map[string]*TokenDelivery{}}
	a.logBook.name, a.logBook.out = cfg.Identity.Name, cfg.Log
	return a, nil
}

// ID returns the device ID.
func (a *Agent) ID() string { return a.id }

// Name returns the identity name.
func (a *Agent) Name() string { return a.cfg.Identity.Name }

// SetFaults replaces the active faults.
func (a *Agent) SetFaults(f AgentFaults) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults = f
}

// SetClock replaces the agent's DRM clock (nil: wall clock).
func (a *Agent) SetClock(c func() time.Time) {
	if c == nil {
		c = time.Now
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clock = c
}

func (a *Agent) state() (AgentFaults, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.clock()
	return a.faults, now
}

// requestTime is the time the agent writes into a request.
func (a *Agent) requestTime() time.Time {
	f, now := a.state()
	if f.StaleTime {
		return now.Add(-48 * time.Hour)
	}
	return now
}

// RO returns an installed RO.
func (a *Agent) RO(id string) *InstalledRO {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ros[id]
}

// Tokens returns the token balance.
func (a *Agent) Tokens() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tokens
}

// InDomain reports whether the agent holds a domain context joined through riID (any RI when
// riID is empty).
func (a *Agent) InDomain(domainID, riID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	dom := a.domains[domainID]
	return dom != nil && (riID == "" || dom.ris[riID])
}

// Registered returns the ID of the RI the agent registered with at base ("" if none).
func (a *Agent) Registered(base string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byBase[strings.TrimRight(base, "/")]
}

// Forget drops the RI context for base, so that the next operation registers again.
func (a *Agent) Forget(base string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	base = strings.TrimRight(base, "/")
	delete(a.ris, a.byBase[base])
	delete(a.byBase, base)
}

func (a *Agent) ctxFor(base string) *agentRI {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ris[a.byBase[strings.TrimRight(base, "/")]]
}

// ensure returns the RI context for base, registering first when there is none (as a device
// does when a trigger names an RI it does not know).
func (a *Agent) ensure(ctx context.Context, base string) (*agentRI, error) {
	if c := a.ctxFor(base); c != nil {
		return c, nil
	}
	if _, err := a.register(ctx, base, ""); err != nil {
		return nil, err
	}
	if c := a.ctxFor(base); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("sim: registration with %s did not leave an RI context for that URL", base)
}

func (a *Agent) triggerNonce(n string) string {
	f, _ := a.state()
	if n != "" && f.WrongNonce {
		return newNonce()
	}
	return n
}

// chainFor returns the device chain for a request to c, or nil when it is left out.
func (a *Agent) chainFor(c *agentRI) [][]byte {
	f, _ := a.state()
	if f.OmitChain || (a.cfg.CacheChains && c != nil && c.caching) {
		return nil
	}
	return a.cfg.Identity.ChainDER()
}

func (a *Agent) sign(root *d.Node, prefix ...[]byte) ([]byte, error) {
	f, _ := a.state()
	return Sign(root, a.cfg.Identity.Key, f.BadSignature, prefix...)
}

func (a *Agent) roap(ctx context.Context, u string, body []byte) ([]byte, error) {
	_, ct, resp, err := post(ctx, a.client, u, CTROAP, body)
	if err != nil {
		return nil, err
	}
	if mt := strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]); mt != CTROAP {
		return nil, fmt.Errorf("sim: %s answered with content type %q", u, ct)
	}
	return resp, nil
}

// ---- registration ----

// Register runs the 4-pass registration with the RI at base (its URL without /roap) and returns
// the RI ID.
func (a *Agent) Register(ctx context.Context, base string) (string, error) {
	return a.register(ctx, base, "")
}

func (a *Agent) register(ctx context.Context, base, trig string) (string, error) {
	base = strings.TrimRight(base, "/")
	f, _ := a.state()
	tn := a.triggerNonce(trig)
	hello := DeviceHello{TriggerNonce: tn, Version: "1.0", DeviceIDs: []string{a.id},
		Algorithms: simAlgorithms, CertificateCaching: true}.Bytes()
	rh, err := a.roap(ctx, base+"/roap", hello)
	if err != nil {
		return "", err
	}
	rhRoot, err := parseMsg(rh, "riHello")
	if err != nil {
		return "", err
	}
	if st := status(rhRoot); st != StatusSuccess {
		return "", &StatusError{"riHello", st}
	}
	if v := textAt(rhRoot, "selectedVersion"); v != "1.0" {
		return "", fmt.Errorf("sim: riHello selected version %q, which the device did not offer", v)
	}
	sid, _ := rhRoot.Attr("sessionId")
	riID := idAt(rhRoot, "riID")
	a.mu.Lock()
	prior := a.ris[riID]
	a.mu.Unlock()
	req := RegistrationRequest{SessionID: sid, TriggerNonce: tn, Nonce: newNonce(), Time: a.requestTime(),
		TrustedAuthorities: rootIDs(a.cfg.Roots), ServerInfo: textAt(rhRoot, "serverInfo"), NoOCSP: a.cfg.NoOCSP,
		DeviceDetails: []string{"roapproxy", "sim-agent", "1.0"}}
	if peerKeyID(rhRoot) != a.id && !f.OmitChain {
		req.Chain = a.cfg.Identity.ChainDER()
	}
	if prior != nil && prior.chain != nil {
		req.PeerKeyID = riID // the device still holds this RI's certificate
	}
	sent, err := req.Sign(a.cfg.Identity.Key, f.BadSignature, hello, rh)
	if err != nil {
		return "", err
	}
	resp, err := a.roap(ctx, base+"/roap", sent)
	if err != nil {
		return "", err
	}
	root, err := parseMsg(resp, "registrationResponse")
	if err != nil {
		return "", err
	}
	if st := status(root); st != StatusSuccess {
		return "", &StatusError{"registrationResponse", st}
	}
	if got, _ := root.Attr("sessionId"); got != sid {
		return "", fmt.Errorf("sim: registrationResponse sessionId %q, expected %q", got, sid)
	}
	nonce, _ := d.DecodeBase64(req.Nonce)
	c := &agentRI{id: riID, caching: d.HasExtension(rhRoot, "CertificateCaching"), noOCSP: a.cfg.NoOCSP}
	if prior != nil {
		c.chain = prior.chain
	}
	if err := a.verifyRI(resp, root, c, riID, nonce, !a.cfg.NoOCSP, sent); err != nil {
		return "", fmt.Errorf("sim: registrationResponse: %w", err)
	}
	riURL := textAt(root, "riURL")
	if !strings.HasSuffix(riURL, "/roap") {
		return "", fmt.Errorf("sim: riURL %q is not a /roap endpoint of the simulated RI", riURL)
	}
	c.base = strings.TrimSuffix(riURL, "/roap")
	a.mu.Lock()
	a.ris[riID] = c
	a.byBase[c.base] = riID
	a.byBase[base] = riID
	a.mu.Unlock()
	a.logf("registered with %s (%s)", riID, c.base)
	return riID, nil
}

// verifyRI checks an RI-signed response: riID, the RI chain (from the message, else cached), the
// signature over prefix || message-without-signature, and the OCSP response for the RI
// certificate (bound to nonce when not nil; required when needOCSP). It updates c's chain and
// OCSP.
func (a *Agent) verifyRI(raw []byte, root *d.Node, c *agentRI, riID string, nonce []byte, needOCSP bool, prefix ...[]byte) error {
	// registrationResponse names no riID: there the chain leaf proves the riHello's riID.
	if root.Child("riID") != nil {
		if got := idAt(root, "riID"); got != riID {
			return fmt.Errorf("riID %s, expected %s", got, riID)
		}
	}
	_, now := a.state()
	der, err := chainAt(root, "certificateChain")
	if err != nil {
		return err
	}
	chain := c.chain
	if der != nil {
		if chain, err = parseChainDER(der); err != nil {
			return err
		}
		if err := validateChain(chain, a.cfg.Roots, now); err != nil {
			return fmt.Errorf("RI chain: %w", err)
		}
		if KeyID(chain[0]) != riID {
			return errors.New("RI chain leaf does not match riID")
		}
		if !hasKeyPurpose(chain[0], OIDKPRightsIssuer) {
			return errors.New("RI certificate lacks oma-kp-rightsIssuer")
		}
	}
	if len(chain) == 0 {
		return errors.New("no RI certificate chain, and none cached")
	}
	signed, sig, err := signedPart(raw, root)
	if err != nil {
		return err
	}
	parts := append(append([][]byte(nil), prefix...), signed)
	pub, err := rsaKey(chain[0])
	if err != nil {
		return err
	}
	if err := VerifyPSS(pub, sig, parts...); err != nil {
		return err
	}
	var ocsp [][]byte
	for _, n := range root.ChildrenNamed("ocspResponse") {
		b, err := d.DecodeBase64(n.TextContent())
		if err != nil {
			return fmt.Errorf("ocspResponse is not base64: %w", err)
		}
		ocsp = append(ocsp, b)
	}
	if len(ocsp) == 0 && needOCSP {
		return errors.New("no OCSP response for the RI certificate")
	}
	issuers := append(append([]*x509.Certificate(nil), chain[1:]...), a.cfg.Roots...)
	for i, der := range ocsp {
		if i >= len(chain) {
			break
		}
		res, err := checkOCSPResponse(der, chain[i], issuers[i])
		if err != nil {
			return err
		}
		if res.Status != "good" {
			return fmt.Errorf("OCSP says the certificate %q is %s", chain[i].Subject.CommonName, res.Status)
		}
		if err := res.fresh(now); err != nil {
			return err
		}
		if nonce != nil && (!res.HasNonce || string(res.Nonce) != string(nonce)) {
			return errors.New("OCSP response does not carry the device nonce")
		}
	}
	c.chain = chain
	if len(ocsp) > 0 {
		c.ocsp = ocsp
	}
	return nil
}

// checkEcho compares the echoed deviceID and nonce of a response.
func (a *Agent) checkEcho(root *d.Node, nonce string) error {
	if got := idAt(root, "deviceID"); got != a.id {
		return fmt.Errorf("deviceID %s is not this device", got)
	}
	if got := textAt(root, "nonce"); got != nonce {
		return fmt.Errorf("nonce %q does not echo the request nonce %q", got, nonce)
	}
	return nil
}

// ---- RO acquisition ----

// AcquireRO runs 2-pass RO acquisition with the RI at base (registering first if needed) and
// installs the verified ROs.
func (a *Agent) AcquireRO(ctx context.Context, base string, roIDs []string) ([]*InstalledRO, error) {
	return a.acquire(ctx, base, roIDs, "")
}

func (a *Agent) acquire(ctx context.Context, base string, roIDs []string, trig string) ([]*InstalledRO, error) {
	c, err := a.ensure(ctx, base)
	if err != nil {
		return nil, err
	}
	req := RORequest{TriggerNonce: a.triggerNonce(trig), DeviceID: a.id, RIID: c.id, Nonce: newNonce(), Time: a.requestTime(),
		ROIDs: roIDs, Chain: a.chainFor(c), PeerKeyID: c.id, NoOCSP: c.noOCSP}
	sent, err := a.sign(req.Build())
	if err != nil {
		return nil, err
	}
	root, err := a.exchange(ctx, c, sent, "roResponse", req.Nonce)
	if err != nil {
		return nil, err
	}
	return a.installROs(root, c.id)
}

// exchange posts a signed request to the RI and returns the response's root once it is known to
// be a Success answer of the expected kind to this request: deviceID and nonce echoed, and the
// RI's signature, chain and OCSP verified.
func (a *Agent) exchange(ctx context.Context, c *agentRI, sent []byte, kind, nonce string) (*d.Node, error) {
	resp, err := a.roap(ctx, c.base+"/roap", sent)
	if err != nil {
		return nil, err
	}
	root, err := parseMsg(resp, kind)
	if err != nil {
		return nil, err
	}
	if st := status(root); st != StatusSuccess {
		return nil, &StatusError{kind, st}
	}
	if err := a.checkEcho(root, nonce); err != nil {
		return nil, fmt.Errorf("sim: %s: %w", kind, err)
	}
	if err := a.verifyRI(resp, root, c, c.id, nil, false); err != nil {
		return nil, fmt.Errorf("sim: %s: %w", kind, err)
	}
	return root, nil
}

// installROs unwraps and checks every protected RO of a verified roResponse.
func (a *Agent) installROs(root *d.Node, riID string) ([]*InstalledRO, error) {
	var out []*InstalledRO
	for _, pr := range root.ChildrenNamed("protectedRO") {
		ro, err := a.unwrapRO(pr, riID)
		if err != nil {
			return nil, err
		}
		out = append(out, ro)
	}
	if len(out) == 0 {
		return nil, errors.New("sim: roResponse carries no protectedRO")
	}
	a.mu.Lock()
	for _, ro := range out {
		a.ros[ro.ID] = ro
	}
	a.mu.Unlock()
	return out, nil
}

// unwrapRO checks one protected RO (roap-core §7.5, §7.6) and returns its content key.
func (a *Agent) unwrapRO(pr *d.Node, riID string) (*InstalledRO, error) {
	ro := pr.Child("ro")
	if ro == nil {
		return nil, errors.New("sim: protectedRO has no ro")
	}
	id, _ := ro.Attr("id")
	if got := idAt(ro, "riID"); got != riID {
		return nil, fmt.Errorf("sim: RO %s names RI %s", id, got)
	}
	c, err := d.DecodeBase64(textAt(ro, "encKey/CipherData/CipherValue"))
	if err != nil {
		return nil, fmt.Errorf("sim: RO %s encKey: %w", id, err)
	}
	keys, err := KEMDecrypt(a.cfg.Identity.Key, c)
	if err != nil || len(keys) != 32 {
		return nil, fmt.Errorf("sim: RO %s: cannot unwrap K_MAC||K_REK: %v", id, err)
	}
	kmac, krek := keys[:16], keys[16:]
	digest := sha1.Sum(d.Canonical(ro, nil))
	si := pr.Find("mac/SignedInfo")
	if si == nil {
		return nil, fmt.Errorf("sim: RO %s has no mac/SignedInfo", id)
	}
	if ref, _ := si.Find("Reference").Attr("URI"); ref != "#"+id {
		return nil, fmt.Errorf("sim: RO %s: mac references %q", id, ref)
	}
	if got := textAt(si, "Reference/DigestValue"); got != b64(digest[:]) {
		return nil, fmt.Errorf("sim: RO %s: DigestValue does not match the RO", id)
	}
	mac, err := d.DecodeBase64(textAt(pr, "mac/SignatureValue"))
	if err != nil {
		return nil, err
	}
	if err := CheckMAC(HMACSHA1, kmac, d.Canonical(si, nil), mac); err != nil {
		return nil, fmt.Errorf("sim: RO %s: %w", id, err)
	}
	wrapped, err := d.DecodeBase64(textAt(ro, "rights/agreement/asset/KeyInfo/EncryptedKey/CipherData/CipherValue"))
	if err != nil {
		return nil, err
	}
	cek, err := AESUnwrap(krek, wrapped)
	if err != nil {
		return nil, fmt.Errorf("sim: RO %s: CEK: %w", id, err)
	}
	return &InstalledRO{ID: id, ContentID: textAt(ro, "rights/agreement/asset/context/uid"), RIID: riID, CEK: cek}, nil
}

// ---- domains ----

// JoinDomain joins a domain through the RI at base and keeps the unwrapped domain key.
func (a *Agent) JoinDomain(ctx context.Context, base, domainID string) error {
	return a.join(ctx, base, domainID, "")
}

func (a *Agent) join(ctx context.Context, base, domainID, trig string) error {
	c, err := a.ensure(ctx, base)
	if err != nil {
		return err
	}
	req := JoinDomainRequest{TriggerNonce: a.triggerNonce(trig), DeviceID: a.id, RIID: c.id, Nonce: newNonce(),
		Time: a.requestTime(), DomainID: domainID, Chain: a.chainFor(c), PeerKeyID: c.id, NoOCSP: c.noOCSP}
	sent, err := a.sign(req.Build())
	if err != nil {
		return err
	}
	root, err := a.exchange(ctx, c, sent, "joinDomainResponse", req.Nonce)
	if err != nil {
		return err
	}
	dk := root.Find("domainInfo/domainKey")
	if dk == nil {
		return errors.New("sim: joinDomainResponse has no domainKey")
	}
	if id, _ := dk.Find("encKey").Attr("Id"); id != domainID {
		return fmt.Errorf("sim: domain key is for %q, not %q", id, domainID)
	}
	if got := idAt(dk, "riID"); got != c.id {
		return fmt.Errorf("sim: domain key names RI %s", got)
	}
	cv, err := d.DecodeBase64(textAt(dk, "encKey/CipherData/CipherValue"))
	if err != nil {
		return err
	}
	keys, err := KEMDecrypt(a.cfg.Identity.Key, cv)
	if err != nil || len(keys) != 32 {
		return fmt.Errorf("sim: cannot unwrap the domain key: %v", err)
	}
	mac, err := d.DecodeBase64(textAt(dk, "mac"))
	if err != nil {
		return err
	}
	covered := d.Canonical(dk, func(n *d.Node) bool { return n.Parent == dk && n.Local == "mac" })
	if err := CheckMAC(HMACSHA1, keys[:16], covered, mac); err != nil {
		return fmt.Errorf("sim: domain key: %w", err)
	}
	a.mu.Lock()
	dom := a.domains[domainID]
	if dom == nil {
		dom = &agentDomain{ris: map[string]bool{}}
		a.domains[domainID] = dom
	}
	dom.key, dom.ris[c.id] = keys[16:], true
	a.mu.Unlock()
	a.logf("joined %s through %s", domainID, c.id)
	return nil
}

// LeaveDomain leaves a domain through the RI at base. Like Symbian, the agent drops its domain
// context before sending, and says NotDomainMember when it had none for that RI.
func (a *Agent) LeaveDomain(ctx context.Context, base, domainID string) error {
	return a.leave(ctx, base, domainID, "")
}

func (a *Agent) leave(ctx context.Context, base, domainID, trig string) error {
	c, err := a.ensure(ctx, base)
	if err != nil {
		return err
	}
	a.mu.Lock()
	dom := a.domains[domainID]
	member := dom != nil && dom.ris[c.id]
	if member {
		delete(dom.ris, c.id)
		if len(dom.ris) == 0 {
			delete(a.domains, domainID)
		}
	}
	a.mu.Unlock()
	req := LeaveDomainRequest{TriggerNonce: a.triggerNonce(trig), DeviceID: a.id, RIID: c.id, Nonce: newNonce(),
		Time: a.requestTime(), DomainID: domainID, Chain: a.chainFor(c), NotMember: !member}
	sent, err := a.sign(req.Build())
	if err != nil {
		return err
	}
	resp, err := a.roap(ctx, c.base+"/roap", sent)
	if err != nil {
		return err
	}
	root, err := parseMsg(resp, "leaveDomainResponse")
	if err != nil {
		return err
	}
	if st := status(root); st != StatusSuccess {
		return &StatusError{"leaveDomainResponse", st}
	}
	if got := textAt(root, "nonce"); got != req.Nonce {
		return fmt.Errorf("sim: leaveDomainResponse nonce %q does not echo %q", got, req.Nonce)
	}
	if got := textAt(root, "domainID"); got != domainID {
		return fmt.Errorf("sim: leaveDomainResponse domainID %q, expected %q", got, domainID)
	}
	a.logf("left %s through %s", domainID, c.id)
	return nil
}

// ---- metering ----

// SubmitMetering sends the RI at base a metering report about the ROs installed from it.
func (a *Agent) SubmitMetering(ctx context.Context, base string) error { return a.meter(ctx, base, "") }

func (a *Agent) meter(ctx context.Context, base, trig string) error {
	c, err := a.ensure(ctx, base)
	if err != nil {
		return err
	}
	if len(c.chain) == 0 {
		return errors.New("sim: no RI certificate to encrypt the metering report to")
	}
	var b strings.Builder
	b.WriteString("<meteringInfo>")
	a.mu.Lock()
	for _, id := range sortedKeys(a.ros) {
		if ro := a.ros[id]; ro.RIID == c.id {
			fmt.Fprintf(&b, "<use><roID>%s</roID><count>1</count></use>", id)
		}
	}
	a.mu.Unlock()
	b.WriteString("</meteringInfo>")
	riKey, err := rsaKey(c.chain[0])
	if err != nil {
		return err
	}
	req := MeteringReportSubmit{TriggerNonce: a.triggerNonce(trig), DeviceID: a.id, RIID: c.id, Nonce: newNonce(),
		Time: a.requestTime(), Report: []byte(b.String()), RIKey: riKey, Chain: a.chainFor(c)}
	n, err := req.Build()
	if err != nil {
		return err
	}
	sent, err := a.sign(n)
	if err != nil {
		return err
	}
	if _, err := a.exchange(ctx, c, sent, "meteringReportResponse", req.Nonce); err != nil {
		return err
	}
	a.logf("metering report accepted by %s", c.id)
	return nil
}

// ---- tokens ----

// RequestTokens asks the RI at base for tokens (2-pass).
func (a *Agent) RequestTokens(ctx context.Context, base string) (*TokenDelivery, error) {
	c, err := a.ensure(ctx, base)
	if err != nil {
		return nil, err
	}
	req := TokenRequest{DeviceID: a.id, RIID: c.id, Nonce: newNonce(), Time: a.requestTime(),
		TokenDeliveryID: "tdreq-" + hex.EncodeToString(randomBytes(6)), Chain: a.chainFor(c), PeerKeyID: c.id}
	sent, err := a.sign(req.Build())
	if err != nil {
		return nil, err
	}
	_, _, resp, err := post(ctx, a.client, c.base+"/token", CTROAP, sent)
	if err != nil {
		return nil, err
	}
	return a.acceptTokens(resp, c, req.Nonce)
}

// ReportConsumption reports the consumption of delivery td to its tokenReportingURL and
// returns the acknowledging delivery.
func (a *Agent) ReportConsumption(ctx context.Context, td *TokenDelivery, consumed int) (*TokenDelivery, error) {
	a.mu.Lock()
	c := a.ris[td.RIID]
	a.mu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("sim: no RI context for %s", td.RIID)
	}
	if td.ReportingURL == "" {
		return nil, errors.New("sim: the delivery asks for no report")
	}
	rep := TokenConsumptionReport{DeviceID: a.id, RIID: c.id, Nonce: newNonce(), Time: a.requestTime(),
		TokenDeliveryID: td.ID, TokensConsumed: consumed, Chain: a.chainFor(c)}
	sent, err := a.sign(rep.Build())
	if err != nil {
		return nil, err
	}
	_, _, resp, err := post(ctx, a.client, td.ReportingURL, CTROAP, sent)
	if err != nil {
		return nil, err
	}
	return a.acceptTokens(resp, c, rep.Nonce)
}

// acceptTokens verifies a TokenDeliveryResponse (seed 001 §9.2.3) and installs its tokens. nonce
// is "" for a 1-pass delivery.
func (a *Agent) acceptTokens(raw []byte, c *agentRI, nonce string) (*TokenDelivery, error) {
	root, err := parseMsg(raw, "TokenDeliveryResponse")
	if err != nil {
		return nil, err
	}
	if st := status(root); st != StatusSuccess {
		return nil, &StatusError{"TokenDeliveryResponse", st}
	}
	if err := a.checkEcho(root, nonce); err != nil {
		return nil, fmt.Errorf("sim: TokenDeliveryResponse: %w", err)
	}
	if err := a.verifyRI(raw, root, c, c.id, nil, nonce == "" && !c.noOCSP); err != nil {
		return nil, fmt.Errorf("sim: TokenDeliveryResponse: %w", err)
	}
	td := &TokenDelivery{ID: textAt(root, "tokenDeliveryID"), RIID: c.id, ReportingURL: textAt(root, "tokenReportingURL"),
		Movable: d.HasExtension(root, "Movable"), OnePass: nonce == ""}
	if td.Quantity, err = strconv.Atoi(textAt(root, "tokenQuantity")); err != nil {
		return nil, fmt.Errorf("sim: tokenQuantity: %w", err)
	}
	for name, dst := range map[string]*time.Time{"earliestReportingTime": &td.Earliest, "latestReportingTime": &td.Latest,
		"latestTokenConsumptionTime": &td.LTCT} {
		if v := textAt(root, name); v != "" {
			if *dst, _, err = d.ParseDateTime(v); err != nil {
				return nil, fmt.Errorf("sim: %s: %w", name, err)
			}
		}
	}
	if ext := root.Child("extensions"); ext != nil {
		for _, e := range ext.ChildrenNamed("extension") {
			if v := textAt(e, "domainID"); v != "" {
				td.DomainID = v
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seenTDIDs[td.ID] {
		// seed 001: a device discards a delivery whose ID it has already processed.
		return nil, fmt.Errorf("sim: TokenDeliveryResponse replays tokenDeliveryID %q", td.ID)
	}
	a.seenTDIDs[td.ID] = true
	a.deliveries[td.ID] = td
	a.tokens += td.Quantity
	return td, nil
}

// ---- push ----

// Poll fetches everything the RI at base has queued for the device (GET /push) and acts on it:
// triggers start the protocol they name, 1-pass roResponses and TokenDeliveryResponses are
// verified and installed. It returns how many objects it handled.
func (a *Agent) Poll(ctx context.Context, base string) (int, error) {
	base = strings.TrimRight(base, "/")
	for n := 0; ; n++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/push?deviceID="+url.QueryEscape(a.id), nil)
		if err != nil {
			return n, err
		}
		resp, err := a.client.Do(req)
		if err != nil {
			return n, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		_ = resp.Body.Close()
		if err != nil {
			return n, err
		}
		if resp.StatusCode == http.StatusNoContent {
			return n, nil
		}
		if resp.StatusCode != http.StatusOK {
			return n, fmt.Errorf("sim: GET %s/push: HTTP %d", base, resp.StatusCode)
		}
		if err := a.handlePushed(ctx, base, resp.Header.Get("Content-Type"), body); err != nil {
			return n, err
		}
	}
}

func (a *Agent) handlePushed(ctx context.Context, base, ct string, body []byte) error {
	root, err := parseMsg(body)
	if err != nil {
		return fmt.Errorf("sim: pushed object: %w", err)
	}
	switch root.Local {
	case "roapTrigger":
		return a.onTrigger(ctx, root)
	case "roResponse":
		c := a.ctxFor(base)
		if c == nil {
			return errors.New("sim: 1-pass roResponse from an RI without context")
		}
		if st := status(root); st != StatusSuccess {
			return &StatusError{"roResponse", st}
		}
		if err := a.checkEcho(root, ""); err != nil {
			return fmt.Errorf("sim: 1-pass roResponse: %w", err)
		}
		if err := a.verifyRI(body, root, c, c.id, nil, false); err != nil {
			return fmt.Errorf("sim: 1-pass roResponse: %w", err)
		}
		_, err := a.installROs(root, c.id)
		return err
	case "TokenDeliveryResponse":
		c := a.ctxFor(base)
		if c == nil {
			return errors.New("sim: 1-pass TokenDeliveryResponse from an RI without context")
		}
		_, err := a.acceptTokens(body, c, "")
		return err
	}
	return fmt.Errorf("sim: pushed <%s> (%s) is nothing the agent handles", root.QName(), ct)
}

func (a *Agent) onTrigger(ctx context.Context, root *d.Node) error {
	els := root.Elements()
	if len(els) == 0 {
		return errors.New("sim: empty roapTrigger")
	}
	t := els[0]
	typ := t.Local
	if typ == "extendedTrigger" {
		typ, _ = t.Attr("type")
	}
	nonce, roapURL, dom := textAt(t, "nonce"), textAt(t, "roapURL"), textAt(t, "domainID")
	if !strings.HasSuffix(roapURL, "/roap") {
		return fmt.Errorf("sim: trigger roapURL %q is not a /roap endpoint", roapURL)
	}
	base := strings.TrimSuffix(roapURL, "/roap")
	switch typ {
	case "registrationRequest":
		_, err := a.register(ctx, base, nonce)
		return err
	case "roAcquisition":
		var ids []string
		for _, n := range t.ChildrenNamed("roID") {
			ids = append(ids, n.TextContent())
		}
		_, err := a.acquire(ctx, base, ids, nonce)
		return err
	case "joinDomain":
		return a.join(ctx, base, dom, nonce)
	case "leaveDomain":
		return a.leave(ctx, base, dom, nonce)
	case "meteringReport":
		return a.meter(ctx, base, nonce)
	}
	return fmt.Errorf("sim: trigger type %q not handled", typ)
}
