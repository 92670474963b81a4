package sim

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	d "github.com/roapproxy/roapproxy/decode"
)

// RIFaults make a Rights Issuer misbehave in the ways the verifier must notice. The zero value is
// a correct RI.
type RIFaults struct {
	BadSignature          bool // flip a bit of every RSA signature after signing
	WrongNonceEcho        bool // answer with a nonce other than the request's
	WrongDeviceID         bool // answer naming another device
	ReplayTokenDeliveryID bool // reuse the device's previous tokenDeliveryID
	StaleOCSP             bool // ask the responder for an out-of-date OCSP response
	NoOCSP                bool // send no ocspResponse even where one is due
	ForwardWrongStatus    bool // tell the device Success although the DEA said otherwise
	WrongDomainEcho       bool // leaveDomainResponse names another domain
	ModifyEmbeddedLDR     bool // re-serialize the device's leaveDomainRequest instead of forwarding it verbatim
	SkipLeaveTrigger      bool // do not trigger devices the DEA asked to leave
	ExtraResponseExt      bool // add an extension to leaveDomainResponse, where none is defined
}

// DEALink is what an RI knows about the DEA that owns its user domains: where to reach it, its
// ID, and the MAC key (MK) of their RDP context.
type DEALink struct {
	URL string // the DEA's /rdp endpoint
	ID  string
	MK  []byte
	Alg MACAlg
}

// UserDomainAuthority authorizes joins to user domains. The simulated RI calls it in-process; it
// stands for the Get User Domain Authorization exchange, whose format is not public.
type UserDomainAuthority interface {
	AuthorizeJoin(domainID, deviceID, riID string) error
}

// TokenTerms are the reporting window an RI gives with a token delivery, relative to its clock.
type TokenTerms struct {
	Quantity int
	Earliest time.Duration
	Latest   time.Duration
	LTCT     time.Duration // latestTokenConsumptionTime
}

// DefaultTokenTerms: 10 tokens, report between one hour and one day from now, consume until two
// days from now.
var DefaultTokenTerms = TokenTerms{Quantity: 10, Earliest: time.Hour, Latest: 24 * time.Hour, LTCT: 48 * time.Hour}

// RIConfig configures a simulated Rights Issuer.
type RIConfig struct {
	Identity     *Identity
	Roots        []*x509.Certificate // trust anchors for device chains
	Alias        string
	OCSPURL      string // the responder for the RI's own certificates
	StaleOCSPURL string // a responder that answers with stale responses (RIFaults.StaleOCSP)
	// DeviceDomains are the RI's own domains (ID → domain key K_D); UserDomains are SCE user
	// domains whose membership the DEA governs (ID → K_D).
	DeviceDomains map[string][]byte
	UserDomains   map[string][]byte
	DEA           *DEALink
	Authority     UserDomainAuthority
	// ExtendedLeaveTrigger makes the RI send DRM 2.1 <extendedTrigger type="leaveDomain"> when the
	// DEA asks it to remove a device, instead of a <leaveDomain> trigger.
	ExtendedLeaveTrigger bool
	TokenDomainID        string // DomainID extension on token deliveries ("" for none)
	Transport            http.RoundTripper
	Clock                func() time.Time
	Log                  func(string)
	// TimeTolerance is how far a request time may be from the RI clock (default 24 h).
	TimeTolerance time.Duration
}

// RI is a simulated Rights Issuer: an http.Handler serving POST /roap, POST /token,
// POST /token-report, GET /push and POST /rdp.
type RI struct {
	cfg    RIConfig
	id     string
	client *http.Client
	logBook

	mu         sync.Mutex
	faults     RIFaults
	clock      func() time.Time
	public     string // base URL the RI advertises
	sessions   map[string]*regSession
	devices    map[string]*riDevice
	members    map[string]map[string]bool // domainID → deviceID set
	push       map[string][]pushItem      // deviceID → queue
	leaveQueue map[string]bool            // deviceID|domainID of queued leave triggers
	ceks       map[string][]byte
	tdids      map[string]*tokenDelivery
	terms      map[string]TokenTerms
	ocspCache  map[string]ocspCacheEntry
	counter    int
	deaURL     string
	ocspURL    string
	staleURL   string
	metering   map[string][]string // deviceID → decrypted metering reports
}

type regSession struct {
	hello, riHello []byte
	deviceIDs      []string
	created        time.Time
}

type riDevice struct {
	chain    []*x509.Certificate
	chainDER [][]byte
	noOCSP   bool
	lastTDID string
	latest   *tokenDelivery // the latest delivery with a reporting URL
}

type pushItem struct {
	ct    string
	body  []byte
	leave string // deviceID|domainID for queued leave triggers
}

type tokenDelivery struct {
	id       string
	device   string
	quantity int
	ltct     time.Time
	reported bool
}

type ocspCacheEntry struct {
	der   []byte
	until time.Time
}

// NewRI makes a Rights Issuer. Its public URL must be set with SetPublicURL before devices use it.
func NewRI(cfg RIConfig) (*RI, error) {
	if cfg.Identity == nil || len(cfg.Identity.Chain) < 2 {
		return nil, errors.New("sim: RI needs an identity with a chain up to its issuing CA")
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
	if cfg.TimeTolerance == 0 {
		cfg.TimeTolerance = 24 * time.Hour
	}
	if cfg.Alias == "" {
		cfg.Alias = cfg.Identity.Name
	}
	r := &RI{
		cfg: cfg, id: cfg.Identity.ID(), client: &http.Client{Transport: cfg.Transport, Timeout: 20 * time.Second},
		clock: cfg.Clock, sessions: map[string]*regSession{}, devices: map[string]*riDevice{},
		members: map[string]map[string]bool{}, push: map[string][]pushItem{}, leaveQueue: map[string]bool{},
		ceks: map[string][]byte{}, tdids: map[string]*tokenDelivery{}, terms: map[string]TokenTerms{},
		ocspCache: map[string]ocspCacheEntry{}, ocspURL: cfg.OCSPURL, staleURL: cfg.StaleOCSPURL,
		metering: map[string][]string{},
	}
	if cfg.DEA != nil {
		r.deaURL = cfg.DEA.URL
	}
	r.logBook.name, r.logBook.out = cfg.Identity.Name, cfg.Log
	return r, nil
}

// ID returns the RI ID (SHA-1 of its SPKI, base64).
// DEALink returns the RI's context with its DEA, MAC key included: the demo hands the key to the
// verifier so the RDP MACs on the RI↔DEA leg can be checked (zero when the RI has no DEA).
func (r *RI) DEALink() DEALink {
	if r.cfg.DEA == nil {
		return DEALink{}
	}
	l := *r.cfg.DEA
	l.MK = append([]byte(nil), l.MK...)
	return l
}

func (r *RI) ID() string { return r.id }

// Name returns the identity name.
func (r *RI) Name() string { return r.cfg.Identity.Name }

// SetPublicURL sets the base URL the RI advertises (riURL, roapURL, tokenReportingURL): its own
// listener, or a reverse proxy in front of it.
func (r *RI) SetPublicURL(u string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.public = strings.TrimRight(u, "/")
}

// PublicURL returns the advertised base URL.
func (r *RI) PublicURL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.public
}

// SetDEAURL changes where the RI sends RDP requests (a reverse proxy in front of the DEA).
func (r *RI) SetDEAURL(u string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deaURL = u
}

// SetOCSPURL changes where the RI asks for OCSP responses (normal and stale responder).
func (r *RI) SetOCSPURL(u, stale string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ocspURL, r.staleURL = u, stale
	r.ocspCache = map[string]ocspCacheEntry{}
}

// SetFaults replaces the active faults.
func (r *RI) SetFaults(f RIFaults) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = f
}

// SetClock replaces the RI clock (nil: wall clock).
func (r *RI) SetClock(c func() time.Time) {
	if c == nil {
		c = time.Now
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock = c
}

// SetTokenTerms sets the terms of future deliveries to one device (nil-equivalent zero value
// restores DefaultTokenTerms).
func (r *RI) SetTokenTerms(deviceID string, t TokenTerms) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t == (TokenTerms{}) {
		delete(r.terms, deviceID)
		return
	}
	r.terms[deviceID] = t
}

func (r *RI) now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.clock()
}

func (r *RI) state() (RIFaults, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.faults, r.public
}

// IsMember reports whether the RI holds a domain context for the device.
func (r *RI) IsMember(domainID, deviceID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.members[domainID][deviceID]
}

// Queued returns how many pushed objects wait for the device.
func (r *RI) Queued(deviceID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.push[deviceID])
}

// ServeHTTP routes the RI endpoints.
func (r *RI) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch req.URL.Path {
	case "/roap", "/token", "/token-report", "/rdp":
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, ok := readBody(w, req)
		if !ok {
			return
		}
		switch req.URL.Path {
		case "/roap":
			r.serveROAP(w, req.Context(), body)
		case "/token":
			r.serveToken(w, req.Context(), body)
		case "/token-report":
			r.serveTokenReport(w, req.Context(), body)
		case "/rdp":
			r.serveRDP(w, body)
		}
	case "/metered":
		// The post-response URL of metering: nothing to show, the visit is the point.
		w.WriteHeader(http.StatusNoContent)
	case "/push":
		if req.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		r.servePush(w, req.URL.Query().Get("deviceID"))
	default:
		http.NotFound(w, req)
	}
}

func (r *RI) serveROAP(w http.ResponseWriter, ctx context.Context, body []byte) {
	root, err := parseMsg(body)
	if err != nil {
		r.logf("POST /roap: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var out []byte
	switch root.Local {
	case "deviceHello":
		out = r.deviceHello(body, root)
	case "registrationRequest":
		out, err = r.registrationRequest(ctx, body, root)
	case "roRequest":
		out, err = r.roRequest(ctx, body, root)
	case "joinDomainRequest":
		out, err = r.joinDomainRequest(ctx, body, root)
	case "leaveDomainRequest":
		out = r.leaveDomainRequest(ctx, body, root)
	case "meteringReportSubmit":
		out, err = r.meteringReportSubmit(ctx, body, root)
	default:
		r.logf("POST /roap: unsupported request <%s>", root.QName())
		out = failure(strings.Replace(root.Local, "Request", "Response", 1), StatusUnknownRequest)
	}
	if err != nil {
		r.logf("POST /roap <%s>: %v", root.Local, err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	reply(w, CTROAP, out)
}

// ---- registration ----

var simAlgorithms = []string{d.AlgSHA1, d.AlgHMAC1, d.AlgPSS, d.AlgKEM, d.AlgKWAES, d.AlgC14N}

func (r *RI) deviceHello(body []byte, root *d.Node) []byte {
	version := textAt(root, "version")
	if !strings.HasPrefix(version, "1.") {
		r.logf("deviceHello: unsupported version %q", version)
		return RIHello{Status: StatusUnsupportedVer}.Bytes()
	}
	var ids []string
	for _, n := range root.ChildrenNamed("deviceID") {
		ids = append(ids, d.IdentifierHash(n))
	}
	offered := map[string]bool{}
	for _, n := range root.ChildrenNamed("supportedAlgorithm") {
		offered[n.TextContent()] = true
	}
	var selected []string
	for _, a := range simAlgorithms {
		if offered[a] {
			selected = append(selected, a)
		}
	}
	sid := "S" + hex.EncodeToString(randomBytes(8))
	r.mu.Lock()
	var peer string
	for _, id := range ids {
		if dev := r.devices[id]; dev != nil && dev.chain != nil {
			peer = id // the RI already holds this device's certificate: the device may skip its chain
		}
	}
	r.mu.Unlock()
	hello := RIHello{
		Status: StatusSuccess, SessionID: sid, Version: "1.0", RIID: r.id, Algorithms: selected, RINonce: newNonce(),
		TrustedAuthorities: rootIDs(r.cfg.Roots), ServerInfo: b64([]byte("roapproxy-sim:" + sid)),
		PeerKeyID: peer, CertificateCaching: true,
	}
	out := hello.Bytes()
	r.mu.Lock()
	r.sessions[sid] = &regSession{hello: body, riHello: out, deviceIDs: ids, created: r.clock()}
	for k, s := range r.sessions { // sessions abandoned for an hour are forgotten
		if r.clock().Sub(s.created) > time.Hour {
			delete(r.sessions, k)
		}
	}
	r.mu.Unlock()
	return out
}

func rootIDs(roots []*x509.Certificate) []string {
	var out []string
	for _, c := range roots {
		out = append(out, KeyID(c))
	}
	return out
}

func (r *RI) registrationRequest(ctx context.Context, body []byte, root *d.Node) ([]byte, error) {
	sid, _ := root.Attr("sessionId")
	r.mu.Lock()
	sess := r.sessions[sid]
	delete(r.sessions, sid)
	r.mu.Unlock()
	fail := func(st, why string, args ...any) ([]byte, error) {
		r.logf("registrationRequest (session %s): %s: "+why, append([]any{sid, st}, args...)...)
		return RegistrationResponse{Status: st, SessionID: sid}.Sign(nil, false, nil)
	}
	if sess == nil {
		return fail(StatusAccessDenied, "no live session")
	}
	chainDER, err := chainAt(root, "certificateChain")
	if err != nil {
		return fail(StatusInvalidChain, "%v", err)
	}
	var chain []*x509.Certificate
	if chainDER == nil {
		// Only allowed when riHello told the device the RI already holds its key.
		r.mu.Lock()
		for _, id := range sess.deviceIDs {
			if dev := r.devices[id]; dev != nil && dev.chain != nil {
				chain, chainDER = dev.chain, dev.chainDER
			}
		}
		r.mu.Unlock()
		if chain == nil {
			return fail(StatusNoChain, "no certificate chain sent and none cached")
		}
	} else if chain, err = parseChainDER(chainDER); err != nil {
		return fail(StatusInvalidChain, "%v", err)
	}
	now := r.now()
	if err := validateChain(chain, r.cfg.Roots, now); err != nil {
		if errors.Is(err, errUntrustedRoot) {
			return fail("TrustedRootCertificateNotPresent", "%v", err)
		}
		return fail(StatusInvalidChain, "%v", err)
	}
	if !hasKeyPurpose(chain[0], OIDKPDRMAgent) {
		return fail(StatusInvalidChain, "device certificate lacks oma-kp-drmAgent")
	}
	devID := KeyID(chain[0])
	known := false
	for _, id := range sess.deviceIDs {
		known = known || id == devID
	}
	if !known {
		return fail(StatusInvalidChain, "certificate key %s is not one of the deviceHello deviceIDs", devID)
	}
	signed, sig, err := signedPart(body, root)
	if err != nil {
		return fail(StatusSignatureError, "%v", err)
	}
	pub, err := rsaKey(chain[0])
	if err == nil {
		err = VerifyPSS(pub, sig, sess.hello, sess.riHello, signed)
	}
	if err != nil {
		return fail(StatusSignatureError, "%v", err)
	}
	noOCSP := d.HasExtension(root, "NoOCSPResponse")
	faults, public := r.state()
	var ocsp [][]byte
	if !noOCSP {
		nonce, err := d.DecodeBase64(textAt(root, "nonce"))
		if err != nil {
			return fail(StatusMalformed, "device nonce is not base64")
		}
		if ocsp, err = r.ocspFor(ctx, nonce); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	dev := r.devices[devID]
	if dev == nil {
		dev = &riDevice{}
		r.devices[devID] = dev
	}
	dev.chain, dev.chainDER, dev.noOCSP = chain, chainDER, noOCSP
	r.mu.Unlock()
	resp := RegistrationResponse{Status: StatusSuccess, SessionID: sid, RIURL: public + "/roap", OCSP: ocsp}
	if peerKeyID(root) != r.id {
		resp.Chain = r.cfg.Identity.ChainDER()
	}
	if u, err := url.Parse(public); err == nil && u.Hostname() != "" {
		resp.WhiteList = []string{u.Hostname()}
	}
	r.logf("registered device %s (session %s)", devID, sid)
	return resp.Sign(r.cfg.Identity.Key, faults.BadSignature, body)
}

// ocspFor returns OCSP responses for the RI's chain (leaf, then its CA), bound to nonce when it
// is not nil. Nonce-less responses are cached for a few minutes, as real RIs do.
func (r *RI) ocspFor(ctx context.Context, nonce []byte) ([][]byte, error) {
	faults, _ := r.state()
	if faults.NoOCSP {
		return nil, nil
	}
	r.mu.Lock()
	u := r.ocspURL
	if faults.StaleOCSP && r.staleURL != "" {
		u = r.staleURL
	}
	r.mu.Unlock()
	if u == "" {
		return nil, errors.New("sim: RI has no OCSP responder URL")
	}
	chain := r.cfg.Identity.Chain
	issuers := append(append([]*x509.Certificate(nil), chain[1:]...), r.cfg.Roots...)
	var out [][]byte
	for i := 0; i < len(chain) && i < len(issuers); i++ {
		key := fmt.Sprintf("%s|%d", u, i)
		now := r.now()
		if nonce == nil {
			r.mu.Lock()
			e, ok := r.ocspCache[key]
			r.mu.Unlock()
			if ok && now.Before(e.until) {
				out = append(out, e.der)
				continue
			}
		}
		req, err := OCSPRequestWithNonce(chain[i], issuers[i], nonce)
		if err != nil {
			return nil, err
		}
		_, _, der, err := post(ctx, r.client, u, CTOCSPReq, req)
		if err != nil {
			return nil, fmt.Errorf("sim: OCSP request for %q: %w", chain[i].Subject.CommonName, err)
		}
		if nonce == nil {
			r.mu.Lock()
			r.ocspCache[key] = ocspCacheEntry{der: der, until: now.Add(5 * time.Minute)}
			r.mu.Unlock()
		}
		out = append(out, der)
	}
	return out, nil
}

// ---- checks shared by the device requests ----

// deviceCheck verifies a signed device request: the device is registered (or sends a chain), the
// chain is valid, the signature verifies, riID is this RI and the time is plausible. It returns
// the device ID, the device's key and, on failure, the status to answer with.
func (r *RI) deviceCheck(body []byte, root *d.Node, checkTime bool) (string, *riDevice, *rsa.PublicKey, string, error) {
	devID := idAt(root, "deviceID")
	if rid := idAt(root, "riID"); rid != r.id {
		return devID, nil, nil, StatusAccessDenied, fmt.Errorf("riID %s is not this RI", rid)
	}
	r.mu.Lock()
	dev := r.devices[devID]
	var chain []*x509.Certificate
	if dev != nil {
		chain = dev.chain
	}
	r.mu.Unlock()
	if dev == nil {
		return devID, nil, nil, StatusNotRegistered, fmt.Errorf("device %s is not registered", devID)
	}
	if der, err := chainAt(root, "certificateChain"); err != nil {
		return devID, nil, nil, StatusInvalidChain, err
	} else if der != nil {
		if chain, err = parseChainDER(der); err != nil {
			return devID, nil, nil, StatusInvalidChain, err
		}
		if err := validateChain(chain, r.cfg.Roots, r.now()); err != nil {
			return devID, nil, nil, StatusInvalidChain, err
		}
		if KeyID(chain[0]) != devID {
			return devID, nil, nil, StatusInvalidChain, errors.New("chain leaf does not match deviceID")
		}
	}
	if chain == nil {
		return devID, nil, nil, StatusNoChain, errors.New("no device chain")
	}
	signed, sig, err := signedPart(body, root)
	if err != nil {
		return devID, nil, nil, StatusSignatureError, err
	}
	pub, err := rsaKey(chain[0])
	if err != nil {
		return devID, nil, nil, StatusInvalidChain, err
	}
	if err := VerifyPSS(pub, sig, signed); err != nil {
		return devID, nil, nil, StatusSignatureError, err
	}
	if checkTime {
		t, _, err := d.ParseDateTime(textAt(root, "time"))
		if err != nil {
			return devID, nil, nil, StatusMalformed, fmt.Errorf("time: %w", err)
		}
		if skew := t.Sub(r.now()); skew > r.cfg.TimeTolerance || -skew > r.cfg.TimeTolerance {
			return devID, nil, nil, StatusDeviceTimeError, fmt.Errorf("request time %s is %s off", TimeString(t), skew.Round(time.Second))
		}
	}
	return devID, dev, pub, "", nil
}

// echo applies the echo faults to the values a response repeats from its request.
func (r *RI) echo(devID, nonce string) (string, string) {
	faults, _ := r.state()
	if faults.WrongDeviceID {
		devID = b64(randomBytes(20))
	}
	if faults.WrongNonceEcho && nonce != "" {
		nonce = newNonce()
	}
	return devID, nonce
}

// riChainFor returns the RI chain unless the request's PeerKeyIdentifier names the RI key.
func (r *RI) riChainFor(root *d.Node) [][]byte {
	if root != nil && peerKeyID(root) == r.id {
		return nil
	}
	return r.cfg.Identity.ChainDER()
}

// ocspUnlessDeclined returns nonce-less OCSP responses unless the device declined them at
// registration (NoOCSPResponse) or in this request.
func (r *RI) ocspUnlessDeclined(ctx context.Context, dev *riDevice, root *d.Node) ([][]byte, error) {
	r.mu.Lock()
	declined := dev != nil && dev.noOCSP
	r.mu.Unlock()
	if declined || (root != nil && d.HasExtension(root, "NoOCSPResponse")) {
		return nil, nil
	}
	return r.ocspFor(ctx, nil)
}

// ---- RO acquisition ----

// ContentID is the content ID the simulated RI associates with an RO ID.
func ContentID(roID string) string { return "cid:" + roID + "@roapproxy.sim" }

// knownRO reports whether the RI sells roID: every NCName starting with "RO-".
func knownRO(roID string) bool { return strings.HasPrefix(roID, "RO-") && d.IsNCName(roID) }

func (r *RI) cek(roID string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.ceks[roID]
	if k == nil {
		k = randomBytes(16)
		r.ceks[roID] = k
	}
	return k
}

// CEK returns the content key of an RO ID (tests compare it with what the device unwrapped).
func (r *RI) CEK(roID string) []byte { return append([]byte(nil), r.cek(roID)...) }

func (r *RI) protectedROs(devID string, pub *rsa.PublicKey, roIDs []string) ([]*d.Node, error) {
	var out []*d.Node
	for _, id := range roIDs {
		n, err := ProtectedRO(ROParams{ID: id, RIID: r.id, ContentID: ContentID(id), CEK: r.cek(id), DeviceID: devID, DeviceKey: pub})
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func (r *RI) roRequest(ctx context.Context, body []byte, root *d.Node) ([]byte, error) {
	devID, dev, pub, st, err := r.deviceCheck(body, root, true)
	if err != nil {
		r.logf("roRequest from %s: %s: %v", devID, st, err)
		return ROResponse{Status: st}.Sign(nil, false)
	}
	var roIDs []string
	for _, n := range root.Find("roInfo").ChildrenNamed("roID") {
		roIDs = append(roIDs, n.TextContent())
	}
	if len(roIDs) == 0 {
		return ROResponse{Status: StatusMalformed}.Sign(nil, false)
	}
	for _, id := range roIDs {
		if !knownRO(id) {
			r.logf("roRequest from %s: NotFound: unknown RO %q", devID, id)
			return ROResponse{Status: StatusNotFound}.Sign(nil, false)
		}
	}
	if dom := textAt(root, "domainID"); dom != "" {
		r.logf("roRequest from %s: NotSupported: domain ROs (%s) are not simulated", devID, dom)
		return ROResponse{Status: StatusNotSupported}.Sign(nil, false)
	}
	ros, err := r.protectedROs(devID, pub, roIDs)
	if err != nil {
		return nil, err
	}
	ocsp, err := r.ocspUnlessDeclined(ctx, dev, root)
	if err != nil {
		return nil, err
	}
	faults, _ := r.state()
	echoDev, nonce := r.echo(devID, textAt(root, "nonce"))
	r.logf("roResponse to %s: %s", devID, strings.Join(roIDs, ","))
	return ROResponse{Status: StatusSuccess, DeviceID: echoDev, RIID: r.id, Nonce: nonce, ROs: ros,
		Chain: r.riChainFor(root), OCSP: ocsp}.Sign(r.cfg.Identity.Key, faults.BadSignature)
}

// PushRO queues a 1-pass roResponse for the device (delivered through GET /push).
func (r *RI) PushRO(ctx context.Context, deviceID string, roIDs []string) error {
	r.mu.Lock()
	var pub *rsa.PublicKey
	if dev := r.devices[deviceID]; dev != nil && len(dev.chain) > 0 {
		pub, _ = dev.chain[0].PublicKey.(*rsa.PublicKey)
	}
	r.mu.Unlock()
	if pub == nil {
		return fmt.Errorf("sim: device %s is not registered at %s", deviceID, r.Name())
	}
	ros, err := r.protectedROs(deviceID, pub, roIDs)
	if err != nil {
		return err
	}
	ocsp, err := r.ocspFor(ctx, nil)
	if err != nil {
		return err
	}
	faults, _ := r.state()
	devID, _ := r.echo(deviceID, "")
	out, err := ROResponse{Status: StatusSuccess, DeviceID: devID, RIID: r.id, ROs: ros, Chain: r.cfg.Identity.ChainDER(),
		OCSP: ocsp}.Sign(r.cfg.Identity.Key, faults.BadSignature)
	if err != nil {
		return err
	}
	r.enqueue(deviceID, pushItem{ct: CTROAP, body: out})
	return nil
}

// ---- metering ----

func (r *RI) meteringReportSubmit(ctx context.Context, body []byte, root *d.Node) ([]byte, error) {
	devID, dev, _, st, err := r.deviceCheck(body, root, true)
	if err != nil {
		r.logf("meteringReportSubmit from %s: %s: %v", devID, st, err)
		return MeteringReportResponse{Status: st}.Sign(nil, false)
	}
	plain, st, err := openMeteringReport(root.Child("meteringReport"), r.cfg.Identity.Key)
	if err != nil {
		r.logf("meteringReportSubmit from %s: %s: %v", devID, st, err)
		return MeteringReportResponse{Status: st}.Sign(nil, false)
	}
	ocsp, err := r.ocspUnlessDeclined(ctx, dev, root)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.metering[devID] = append(r.metering[devID], string(plain))
	r.mu.Unlock()
	faults, public := r.state()
	echoDev, nonce := r.echo(devID, textAt(root, "nonce"))
	r.logf("metering report from %s: %s", devID, plain)
	return MeteringReportResponse{Status: StatusSuccess, DeviceID: echoDev, RIID: r.id, Nonce: nonce,
		Chain: r.riChainFor(root), OCSP: ocsp, PostResponseURL: public + "/metered"}.Sign(r.cfg.Identity.Key, faults.BadSignature)
}

// MeteringReports returns the decrypted metering reports a device sent.
func (r *RI) MeteringReports(deviceID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.metering[deviceID]...)
}

// ---- domains ----

func (r *RI) joinDomainRequest(ctx context.Context, body []byte, root *d.Node) ([]byte, error) {
	devID, dev, pub, st, err := r.deviceCheck(body, root, true)
	if err != nil {
		r.logf("joinDomainRequest from %s: %s: %v", devID, st, err)
		return JoinDomainResponse{Status: st}.Sign(nil, false)
	}
	dom := textAt(root, "domainID")
	kd, user := r.cfg.UserDomains[dom]
	if !user {
		kd = r.cfg.DeviceDomains[dom]
	}
	if kd == nil {
		r.logf("joinDomainRequest from %s: InvalidDomain: %q", devID, dom)
		return JoinDomainResponse{Status: StatusInvalidDomain}.Sign(nil, false)
	}
	if user {
		if r.cfg.Authority == nil {
			return JoinDomainResponse{Status: StatusInvalidDomain}.Sign(nil, false)
		}
		if err := r.cfg.Authority.AuthorizeJoin(dom, devID, r.id); err != nil {
			r.logf("joinDomainRequest from %s: DomainAccessDenied by the DEA: %v", devID, err)
			return JoinDomainResponse{Status: StatusDomainAccessDeny}.Sign(nil, false)
		}
	}
	key, err := DomainKey(dom, r.id, devID, pub, kd)
	if err != nil {
		return nil, err
	}
	ocsp, err := r.ocspUnlessDeclined(ctx, dev, root)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.members[dom] == nil {
		r.members[dom] = map[string]bool{}
	}
	r.members[dom][devID] = true
	r.mu.Unlock()
	faults, _ := r.state()
	echoDev, nonce := r.echo(devID, textAt(root, "nonce"))
	r.logf("device %s joined %s", devID, dom)
	return JoinDomainResponse{Status: StatusSuccess, DeviceID: echoDev, RIID: r.id, Nonce: nonce,
		NotAfter: TimeString(r.now().AddDate(1, 0, 0)), DomainKey: key, Chain: r.riChainFor(root), OCSP: ocsp,
	}.Sign(r.cfg.Identity.Key, faults.BadSignature)
}

func (r *RI) leaveResponse(st, nonce, dom string) []byte {
	faults, _ := r.state()
	if faults.WrongDomainEcho && st == StatusSuccess {
		dom = otherGeneration(dom)
	}
	if faults.WrongNonceEcho {
		nonce = newNonce()
	}
	if st != StatusSuccess {
		return LeaveDomainResponse{Status: st}.Bytes()
	}
	n := roapRoot("leaveDomainResponse", d.A("status", st), d.El("nonce", nonce), d.El("domainID", dom))
	if faults.ExtraResponseExt {
		n.Children = append(n.Children, extensionsEl(Extension("NotDomainMember")))
	}
	return n.Bytes()
}

// otherGeneration returns the same domain base with another 3-digit generation.
func otherGeneration(dom string) string {
	if len(dom) < 3 {
		return dom + "999"
	}
	if strings.HasSuffix(dom, "999") {
		return dom[:len(dom)-3] + "998"
	}
	return dom[:len(dom)-3] + "999"
}

func (r *RI) leaveDomainRequest(ctx context.Context, body []byte, root *d.Node) []byte {
	devID, dom, nonce := idAt(root, "deviceID"), textAt(root, "domainID"), textAt(root, "nonce")
	if _, user := r.cfg.UserDomains[dom]; user && r.cfg.DEA != nil {
		return r.proxyLeave(ctx, body, root, devID, dom, nonce)
	}
	_, _, _, st, err := r.deviceCheck(body, root, false)
	if err != nil {
		r.logf("leaveDomainRequest from %s: %s: %v", devID, st, err)
		return r.leaveResponse(st, nonce, dom)
	}
	if _, ok := r.cfg.DeviceDomains[dom]; !ok {
		r.logf("leaveDomainRequest from %s: InvalidDomain %q", devID, dom)
		return r.leaveResponse(StatusInvalidDomain, nonce, dom)
	}
	r.mu.Lock()
	delete(r.members[dom], devID)
	r.mu.Unlock()
	r.logf("device %s left %s", devID, dom)
	return r.leaveResponse(StatusSuccess, nonce, dom)
}

// proxyLeave forwards a leave of a user domain to the DEA (seed 000 §7.5) and answers the device
// with the DEA's status, the request's nonce and domain (§7.5.3.2).
func (r *RI) proxyLeave(ctx context.Context, body []byte, root *d.Node, devID, dom, nonce string) []byte {
	faults, _ := r.state()
	ldr := body
	if faults.ModifyEmbeddedLDR {
		ldr = reserialize(root)
	}
	req := RDPLeaveRequest{ReqID: r.id, ResID: r.cfg.DEA.ID, Nonce: newNonce(), LDR: ldr}
	if root.Child("certificateChain") == nil {
		r.mu.Lock()
		if dev := r.devices[devID]; dev != nil {
			req.DeviceChain = dev.chainDER
		}
		r.mu.Unlock()
	}
	msg, err := req.MAC(r.cfg.DEA.Alg, r.cfg.DEA.MK, false)
	if err != nil {
		r.logf("proxy leave for %s: %v", devID, err)
		return r.leaveResponse(StatusAbort, nonce, dom)
	}
	r.mu.Lock()
	deaURL := r.deaURL
	r.mu.Unlock()
	_, _, resp, err := post(ctx, r.client, deaURL, CTSCE, msg)
	if err != nil {
		r.logf("proxy leave for %s: DEA unreachable or refused: %v; answering Abort", devID, err)
		return r.leaveResponse(StatusAbort, nonce, dom)
	}
	st, err := r.checkRDPResponse(resp, req.Nonce)
	if err != nil {
		// §7.5.3.2: a response whose MAC fails is discarded; the device still needs an answer.
		r.logf("proxy leave for %s: discarded the DEA response: %v; answering Abort", devID, err)
		return r.leaveResponse(StatusAbort, nonce, dom)
	}
	if st == StatusSuccess {
		r.mu.Lock()
		delete(r.members[dom], devID)
		r.mu.Unlock()
	}
	if faults.ForwardWrongStatus && st != StatusSuccess {
		r.logf("proxy leave for %s: DEA said %s; answering Success (fault)", devID, st)
		st = StatusSuccess
	}
	r.logf("proxy leave for %s from %s: %s", devID, dom, st)
	return r.leaveResponse(st, nonce, dom)
}

func (r *RI) checkRDPResponse(body []byte, nonce string) (string, error) {
	root, err := parseMsg(body, "rdpProxyLeaveUserDomainResponse")
	if err != nil {
		return "", err
	}
	covered, mac, err := macPart(root)
	if err != nil {
		return "", err
	}
	if err := CheckMAC(r.cfg.DEA.Alg, r.cfg.DEA.MK, covered, mac); err != nil {
		return "", err
	}
	if got := textAt(root, "nonce"); got != nonce {
		return "", fmt.Errorf("nonce %q does not echo %q", got, nonce)
	}
	if got := idAt(root, "reqID"); got != r.id {
		return "", fmt.Errorf("reqID %s is not this RI", got)
	}
	if got := idAt(root, "resID"); got != r.cfg.DEA.ID {
		return "", fmt.Errorf("resID %s is not the DEA", got)
	}
	st := status(root)
	if st == "" {
		return "", errors.New("no status")
	}
	return st, nil
}

// reserialize writes a parsed message the way a generic XML library would: with an XML
// declaration and the xsi namespace hoisted to the root. The canonical form is unchanged, the
// bytes are not (the RIFaults.ModifyEmbeddedLDR fault).
func reserialize(root *d.Node) []byte {
	c := root.Clone()
	var strip func(n *d.Node)
	strip = func(n *d.Node) {
		kept := n.Attrs[:0]
		for _, a := range n.Attrs {
			if !(a.IsNS && a.Local == "xsi") {
				kept = append(kept, a)
			}
		}
		n.Attrs = kept
		for _, ch := range n.Children {
			if ch.Kind == d.ElementNode {
				strip(ch)
			}
		}
	}
	strip(c)
	wire, err := declareOnRoot(c.Bytes(), c.QName(), []d.Attr{d.NS("roap", d.NSROAP), d.NS("xsi", d.NSXSI)})
	if err != nil {
		return c.Bytes()
	}
	return append([]byte(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"), wire...)
}

// serveRDP handles a drmTrigger from the DEA (seed 000 §7.6): after checking its MAC, the RI
// queues a ROAP leaveDomain trigger for every listed device.
func (r *RI) serveRDP(w http.ResponseWriter, body []byte) {
	root, err := parseMsg(body, "drmTrigger")
	if err == nil && r.cfg.DEA == nil {
		err = errors.New("no DEA configured")
	}
	if err == nil {
		var covered, mac []byte
		if covered, mac, err = macPart(root); err == nil {
			err = CheckMAC(r.cfg.DEA.Alg, r.cfg.DEA.MK, covered, mac)
		}
	}
	if err == nil {
		if typ, _ := root.Attr("type"); typ != rdpLeaveTriggerType {
			err = fmt.Errorf("trigger type %q not supported", typ)
		} else if got := idAt(root, "resID"); got != r.cfg.DEA.ID {
			err = fmt.Errorf("resID %s is not the DEA", got)
		}
	}
	if err != nil {
		r.logf("POST /rdp: drmTrigger discarded: %v", err)
		http.Error(w, "drmTrigger discarded: "+err.Error(), http.StatusForbidden)
		return
	}
	info := root.Find("body/trgInfo/rdpProxyLeaveUserDomainTrgInformation")
	dom, _ := info.Find("domainID").Attr("domainID")
	faults, public := r.state()
	for _, n := range info.ChildrenNamed("deviceID") {
		dev := d.IdentifierHash(n)
		if faults.SkipLeaveTrigger {
			r.logf("DEA asked %s to leave %s; not triggering it (fault)", dev, dom)
			continue
		}
		key := dev + "|" + dom
		r.mu.Lock()
		dup := r.leaveQueue[key]
		r.leaveQueue[key] = true
		r.mu.Unlock()
		if dup {
			continue
		}
		t := Trigger{Type: "leaveDomain", Extended: r.cfg.ExtendedLeaveTrigger, ID: r.nextID("ld"), RIID: r.id,
			RIAlias: r.cfg.Alias, Nonce: newNonce(), ROAPURL: public + "/roap", DomainID: dom}
		r.enqueue(dev, pushItem{ct: CTTrigger, body: t.Bytes(), leave: key})
		r.logf("DEA asked %s to leave %s; leave trigger queued", dev, dom)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *RI) nextID(prefix string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counter++
	return fmt.Sprintf("%s-%s-%d", prefix, hex.EncodeToString(randomBytes(3)), r.counter)
}

// Trigger queues a ROAP trigger of the given type for the device: registrationRequest,
// roAcquisition (roIDs), joinDomain or leaveDomain (domainID). extended wraps it as a DRM 2.1
// extendedTrigger.
func (r *RI) Trigger(deviceID, typ, domainID string, roIDs []string, extended bool) {
	_, public := r.state()
	t := Trigger{Type: typ, Extended: extended, ID: r.nextID("trg"), RIID: r.id, RIAlias: r.cfg.Alias,
		Nonce: newNonce(), ROAPURL: public + "/roap", DomainID: domainID, ROIDs: roIDs}
	for _, id := range roIDs {
		t.ContentIDs = append(t.ContentIDs, ContentID(id))
	}
	r.enqueue(deviceID, pushItem{ct: CTTrigger, body: t.Bytes()})
}

func (r *RI) enqueue(deviceID string, it pushItem) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.push[deviceID] = append(r.push[deviceID], it)
}

func (r *RI) servePush(w http.ResponseWriter, deviceID string) {
	r.mu.Lock()
	q := r.push[deviceID]
	var it pushItem
	ok := len(q) > 0
	if ok {
		it = q[0]
		r.push[deviceID] = q[1:]
		if it.leave != "" {
			delete(r.leaveQueue, it.leave)
		}
	}
	r.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	reply(w, it.ct, it.body)
}

// ---- tokens (seed 001) ----

func (r *RI) termsFor(devID string) TokenTerms {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.terms[devID]; ok {
		return t
	}
	return DefaultTokenTerms
}

// newTDID returns a token delivery ID never used before (an xs:ID).
func (r *RI) newTDID() string { return r.nextID("tdid") }

// delivery builds and records a TokenDeliveryResponse. nonce is "" for 1-pass.
func (r *RI) delivery(ctx context.Context, devID, nonce, proposed string, quantity int, root *d.Node, terms TokenTerms, onePass bool) ([]byte, error) {
	faults, public := r.state()
	now := r.now().UTC().Truncate(time.Second)
	r.mu.Lock()
	dev := r.devices[devID]
	tdid := proposed
	if tdid == "" || !d.IsNCName(tdid) || r.tdids[tdid] != nil {
		tdid = ""
	}
	if faults.ReplayTokenDeliveryID && dev != nil && dev.lastTDID != "" {
		tdid = dev.lastTDID
	}
	r.mu.Unlock()
	if tdid == "" {
		tdid = r.newTDID()
	}
	var ocsp [][]byte
	var err error
	if onePass {
		ocsp, err = r.ocspFor(ctx, nil) // mandatory in 1-pass (seed 001 Figure 1)
	} else {
		ocsp, err = r.ocspUnlessDeclined(ctx, dev, root)
	}
	if err != nil {
		return nil, err
	}
	td := &tokenDelivery{id: tdid, device: devID, quantity: quantity, ltct: now.Add(terms.LTCT)}
	msg := TokenDeliveryResponse{Status: StatusSuccess, DeviceID: devID, RIID: r.id, TokenDeliveryID: tdid, Nonce: nonce,
		Quantity: quantity, ReportingURL: public + "/token-report", Earliest: now.Add(terms.Earliest),
		Latest: now.Add(terms.Latest), LTCT: td.ltct, Chain: r.riChainFor(root), OCSP: ocsp, Movable: true,
		DomainID: r.cfg.TokenDomainID}
	msg.DeviceID, msg.Nonce = r.echo(devID, nonce)
	out, err := msg.Sign(r.cfg.Identity.Key, faults.BadSignature)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.tdids[tdid] = td
	if dev != nil {
		dev.lastTDID, dev.latest = tdid, td
	}
	r.mu.Unlock()
	return out, nil
}

func (r *RI) serveToken(w http.ResponseWriter, ctx context.Context, body []byte) {
	root, err := parseMsg(body, "tokenRequest")
	if err != nil {
		r.logf("POST /token: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	devID, dev, _, st, err := r.deviceCheck(body, root, true)
	if err != nil {
		r.logf("tokenRequest from %s: %s: %v", devID, st, err)
		reply(w, CTROAP, failure("TokenDeliveryResponse", st))
		return
	}
	now := r.now()
	r.mu.Lock()
	late := dev.latest != nil && !dev.latest.reported && now.After(dev.latest.ltct)
	var lateID string
	if late {
		lateID = dev.latest.id
	}
	r.mu.Unlock()
	if late {
		r.logf("tokenRequest from %s: NoTokenConsumptionReport (delivery %s was due for report)", devID, lateID)
		reply(w, CTROAP, failure("TokenDeliveryResponse", StatusNoTokenReport))
		return
	}
	terms := r.termsFor(devID)
	out, err := r.delivery(ctx, devID, textAt(root, "nonce"), textAt(root, "tokenDeliveryID"), terms.Quantity, root, terms, false)
	if err != nil {
		r.logf("tokenRequest from %s: %v", devID, err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	r.logf("delivered %d tokens to %s", terms.Quantity, devID)
	reply(w, CTROAP, out)
}

func (r *RI) serveTokenReport(w http.ResponseWriter, ctx context.Context, body []byte) {
	root, err := parseMsg(body, "tokenConsumptionReport")
	if err != nil {
		r.logf("POST /token-report: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	devID, _, _, st, err := r.deviceCheck(body, root, false)
	if err != nil {
		if st != StatusNotRegistered {
			st = StatusTokenReportError // the report arrived but is erroneous: resend (seed 001)
		}
		r.logf("tokenConsumptionReport from %s: %s: %v", devID, st, err)
		reply(w, CTROAP, failure("TokenDeliveryResponse", st))
		return
	}
	tdid := textAt(root, "tokenDeliveryID")
	r.mu.Lock()
	td := r.tdids[tdid]
	bad := td == nil || td.device != devID || td.reported
	if !bad {
		td.reported = true
	}
	r.mu.Unlock()
	if bad {
		r.logf("tokenConsumptionReport from %s: TokenConsumptionReportError: delivery %q unknown or already reported", devID, tdid)
		reply(w, CTROAP, failure("TokenDeliveryResponse", StatusTokenReportError))
		return
	}
	// The acknowledgement rolls the reporting period forward (quantity 0: nothing installed).
	terms := r.termsFor(devID)
	out, err := r.delivery(ctx, devID, textAt(root, "nonce"), "", 0, root, terms, false)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	r.logf("acknowledged the report of delivery %s from %s", tdid, devID)
	reply(w, CTROAP, out)
}

// PushTokens queues a 1-pass TokenDeliveryResponse (no nonce, OCSP included).
func (r *RI) PushTokens(ctx context.Context, deviceID string, quantity int) error {
	r.mu.Lock()
	dev := r.devices[deviceID]
	r.mu.Unlock()
	if dev == nil {
		return fmt.Errorf("sim: device %s is not registered at %s", deviceID, r.Name())
	}
	out, err := r.delivery(ctx, deviceID, "", "", quantity, nil, r.termsFor(deviceID), true)
	if err != nil {
		return err
	}
	r.enqueue(deviceID, pushItem{ct: CTROAP, body: out})
	return nil
}
