package sim

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	d "github.com/roapproxy/roapproxy/decode"
)

// DEAFaults make the Domain Enforcement Agent misbehave. The zero value is a correct DEA.
type DEAFaults struct {
	WrongStatus string // when set, sent instead of the status the checks produced
	BadMAC      bool   // flip a bit of every MAC the DEA sends
	SkipFanout  bool   // do not trigger the other RIs after a proxy leave (seed 000 §7.5)
}

// DEAConfig configures a simulated DEA.
type DEAConfig struct {
	Identity *Identity
	Roots    []*x509.Certificate // trust anchors for device chains
	Alias    string
	// Domains are the user domains the DEA governs (anything else is InvalidDomain).
	Domains []string
	// OCSPURL is where the DEA asks for the revocation status of device certificates; when
	// empty, Revoked is consulted instead (nil: nothing is revoked).
	OCSPURL   string
	Revoked   func(*x509.Certificate) bool
	Transport http.RoundTripper
	Clock     func() time.Time
	Log       func(string)
}

// DEA is a simulated Domain Enforcement Agent: an http.Handler serving POST /rdp (RDP requests
// from RIs), keeping user-domain membership per device and RI, and sending drmTriggers to RIs.
type DEA struct {
	cfg    DEAConfig
	id     string
	client *http.Client
	logBook
	fanout sync.WaitGroup

	mu       sync.Mutex
	faults   DEAFaults
	clock    func() time.Time
	public   string
	contexts map[string]*deaContext
	domains  map[string]bool
	// members: domain → device → RIs through which the device joined and has not left.
	members map[string]map[string]map[string]bool
	// triggered: domain → device → RIs already sent a leave trigger for it, not yet left.
	triggered map[string]map[string]map[string]bool
	counter   int
	ocspURL   string
}

type deaContext struct {
	riID string
	url  string // the RI's /rdp endpoint
	mk   []byte
	alg  MACAlg
}

// NewDEA makes a DEA. RIs are added with AddRI.
func NewDEA(cfg DEAConfig) (*DEA, error) {
	if cfg.Identity == nil {
		return nil, errors.New("sim: DEA needs an identity")
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
	if cfg.Alias == "" {
		cfg.Alias = "roapproxy DEA"
	}
	a := &DEA{cfg: cfg, id: cfg.Identity.ID(), client: &http.Client{Transport: cfg.Transport, Timeout: 20 * time.Second},
		clock: cfg.Clock, contexts: map[string]*deaContext{}, domains: map[string]bool{},
		members: map[string]map[string]map[string]bool{}, triggered: map[string]map[string]map[string]bool{},
		ocspURL: cfg.OCSPURL}
	for _, dom := range cfg.Domains {
		a.domains[dom] = true
	}
	a.logBook.name, a.logBook.out = cfg.Identity.Name, cfg.Log
	return a, nil
}

// ID returns the DEA ID.
func (a *DEA) ID() string { return a.id }

// SetPublicURL sets the base URL the DEA advertises (reqURL of its triggers).
func (a *DEA) SetPublicURL(u string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.public = strings.TrimRight(u, "/")
}

// SetOCSPURL changes where the DEA asks for revocation status ("" falls back to DEAConfig.Revoked).
func (a *DEA) SetOCSPURL(u string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ocspURL = u
}

// SetFaults replaces the active faults.
func (a *DEA) SetFaults(f DEAFaults) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults = f
}

// SetClock replaces the DEA clock (nil: wall clock).
func (a *DEA) SetClock(c func() time.Time) {
	if c == nil {
		c = time.Now
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clock = c
}

// AddRI creates (or replaces) the RDP context with an RI: its ID, its /rdp URL and the MAC key.
func (a *DEA) AddRI(riID, rdpURL string, mk []byte, alg MACAlg) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.contexts[riID] = &deaContext{riID: riID, url: rdpURL, mk: mk, alg: alg}
}

// SetRIURL changes where the DEA reaches an RI (a reverse proxy in front of it).
func (a *DEA) SetRIURL(riID, rdpURL string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.contexts[riID]; c != nil {
		c.url = rdpURL
	}
}

// AuthorizeJoin stands for the Get User Domain Authorization exchange: it refuses a join while
// the device still has to complete a proxy leave at some RI (seed 000 §7.5) and otherwise records
// that the device is in the domain through riID.
func (a *DEA) AuthorizeJoin(domainID, deviceID, riID string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.domains[domainID] {
		return fmt.Errorf("unknown user domain %q", domainID)
	}
	if len(a.triggered[domainID][deviceID]) > 0 {
		return fmt.Errorf("device %s has not completed leaving %s at %d RI(s)", deviceID, domainID, len(a.triggered[domainID][deviceID]))
	}
	setAdd(a.members, domainID, deviceID, riID)
	return nil
}

// Members returns, for a domain, each member device with the RIs it joined through.
func (a *DEA) Members(domainID string) map[string][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string][]string{}
	for dev, ris := range a.members[domainID] {
		out[dev] = sortedKeys(ris)
	}
	return out
}

// Pending returns the RIs that were sent a leave trigger for (domain, device) and where the device
// has not left yet.
func (a *DEA) Pending(domainID, deviceID string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return sortedKeys(a.triggered[domainID][deviceID])
}

// Wait blocks until the triggers the DEA is sending in the background have been delivered.
func (a *DEA) Wait() { a.fanout.Wait() }

func setAdd(m map[string]map[string]map[string]bool, a, b, c string) {
	if m[a] == nil {
		m[a] = map[string]map[string]bool{}
	}
	if m[a][b] == nil {
		m[a][b] = map[string]bool{}
	}
	m[a][b][c] = true
}

func setDel(m map[string]map[string]map[string]bool, a, b, c string) {
	if m[a] == nil || m[a][b] == nil {
		return
	}
	delete(m[a][b], c)
	if len(m[a][b]) == 0 {
		delete(m[a], b)
	}
}

// ServeHTTP serves POST /rdp.
func (a *DEA) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/rdp" {
		http.NotFound(w, req)
		return
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, ok := readBody(w, req)
	if !ok {
		return
	}
	root, err := parseMsg(body, "rdpProxyLeaveUserDomainRequest")
	if err != nil {
		a.logf("POST /rdp: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	riID := idAt(root, "reqID")
	a.mu.Lock()
	c := a.contexts[riID]
	faults := a.faults
	a.mu.Unlock()
	if c == nil {
		a.logf("POST /rdp: no RDP context with RI %s", riID)
		http.Error(w, "no RDP context with this requester", http.StatusForbidden)
		return
	}
	// GEN default processing (as far as it can be inferred): the MAC under the context's MK and
	// the DEA's own ID. Without a valid MAC there is nobody to answer authentically.
	covered, mac, err := macPart(root)
	if err == nil {
		err = CheckMAC(c.alg, c.mk, covered, mac)
	}
	if err == nil && idAt(root, "resID") != a.id {
		err = errors.New("resID is not this DEA")
	}
	if err != nil {
		a.logf("POST /rdp from %s: request discarded: %v", riID, err)
		http.Error(w, "request discarded: "+err.Error(), http.StatusForbidden)
		return
	}
	st, dom, dev := a.leave(req.Context(), root, riID)
	sent := st
	if faults.WrongStatus != "" {
		sent = faults.WrongStatus
	}
	out, err := RDPLeaveResponse{Status: sent, ReqID: riID, ResID: a.id, Nonce: textAt(root, "nonce"), DomainID: dom,
		DeviceID: dev}.MAC(c.alg, c.mk, faults.BadMAC)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.logf("proxy leave of %s from %s via %s: %s", dev, dom, riID, st)
	// The fan-out is registered before the response leaves, so that Wait, called by whoever
	// got the response, cannot miss it.
	var send func()
	if st == StatusSuccess && !faults.SkipFanout {
		send = a.fanoutAfterLeave(dom, dev, riID)
	}
	reply(w, CTSCE, out)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if send != nil {
		go send()
	}
}

// fanoutDelay separates the response to a proxy leave from the triggers that follow it, so that
// an observer on the wire sees them in the order seed 000 §7.5 describes (the triggers come
// after the leave was processed), not racing each other.
const fanoutDelay = 30 * time.Millisecond

// leave runs the checks of seed 000 §7.5.2 in order and, when they pass, removes the association
// of the device with the domain through the requesting RI. It returns the status and the domain
// and device IDs the response names.
func (a *DEA) leave(ctx context.Context, root *d.Node, riID string) (st, dom, dev string) {
	info := root.Find("reqInfo/rdpProxyLeaveUserDomainRequestInformation")
	raw, err := d.DecodeBase64(textAt(info, "leaveDomainRequest"))
	if err != nil {
		return StatusMalformed, "", ""
	}
	ldr, err := parseMsg(raw, "leaveDomainRequest")
	if err != nil {
		a.logf("embedded leaveDomainRequest: %v", err)
		return StatusMalformed, "", ""
	}
	dom, dev = textAt(ldr, "domainID"), idAt(ldr, "deviceID")
	der, err := chainAt(ldr, "certificateChain")
	if err == nil && der == nil {
		der, err = chainAt(info, "deviceCertificateChain")
	}
	if err != nil {
		return StatusInvalidChain, dom, dev
	}
	if der == nil {
		a.logf("leave of %s: no device certificate chain in the request", dev)
		return StatusNoChain, dom, dev
	}
	chain, err := parseChainDER(der)
	if err == nil {
		err = validateChain(chain, a.cfg.Roots, a.now())
	}
	if err == nil {
		err = a.revocation(ctx, chain)
	}
	if err != nil {
		a.logf("leave of %s: InvalidCertificateChain: %v", dev, err)
		return StatusInvalidChain, dom, dev
	}
	if !hasKeyPurpose(chain[0], OIDKPDRMAgent) || hasKeyPurpose(chain[0], OIDKPSCEDRMAgent) {
		a.logf("leave of %s: InvalidCertificateChain: key purposes are not drmAgent-without-sceDrmAgent", dev)
		return StatusInvalidChain, dom, dev
	}
	if KeyID(chain[0]) != dev {
		a.logf("leave of %s: SignatureError: the chain belongs to another key", dev)
		return StatusSignatureError, dom, dev
	}
	pub, err := rsaKey(chain[0])
	if err == nil {
		err = verifyEmbedded(raw, ldr, pub)
	}
	if err != nil {
		a.logf("leave of %s: SignatureError: %v", dev, err)
		return StatusSignatureError, dom, dev
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.domains[dom] {
		return StatusInvalidDomain, dom, dev
	}
	setDel(a.members, dom, dev, riID)
	setDel(a.triggered, dom, dev, riID)
	return StatusSuccess, dom, dev
}

// verifyEmbedded checks the device signature over the embedded request's bytes; when those were
// altered without changing the canonical form (a re-serializing RI), the canonical form is tried
// too, as a tolerant DEA would.
func verifyEmbedded(raw []byte, root *d.Node, pub *rsa.PublicKey) error {
	signed, sig, err := signedPart(raw, root)
	if err != nil {
		return err
	}
	if VerifyPSS(pub, sig, signed) == nil {
		return nil
	}
	c := d.Canonical(root, func(n *d.Node) bool { return n.Parent == root && n.Local == "signature" })
	return VerifyPSS(pub, sig, c)
}

// revocation asks the OCSP responder about each certificate of the chain below the root.
func (a *DEA) revocation(ctx context.Context, chain []*x509.Certificate) error {
	a.mu.Lock()
	ocspURL := a.ocspURL
	a.mu.Unlock()
	if ocspURL == "" {
		for _, c := range chain {
			if a.cfg.Revoked != nil && a.cfg.Revoked(c) {
				return fmt.Errorf("certificate %q is revoked", c.Subject.CommonName)
			}
		}
		return nil
	}
	issuers := append(append([]*x509.Certificate(nil), chain[1:]...), a.cfg.Roots...)
	for i, c := range chain {
		var issuer *x509.Certificate
		if i+1 < len(chain) {
			issuer = chain[i+1]
		} else {
			for _, r := range issuers[len(chain)-1:] {
				if CheckIssuedBy(c, r) == nil {
					issuer = r
				}
			}
		}
		if issuer == nil {
			return fmt.Errorf("no issuer for %q", c.Subject.CommonName)
		}
		nonce := randomBytes(16)
		req, err := OCSPRequestWithNonce(c, issuer, nonce)
		if err != nil {
			return err
		}
		_, _, der, err := post(ctx, a.client, ocspURL, CTOCSPReq, req)
		if err != nil {
			return fmt.Errorf("OCSP: %w", err)
		}
		res, err := checkOCSPResponse(der, c, issuer)
		if err != nil {
			return fmt.Errorf("OCSP: %w", err)
		}
		if err := res.fresh(a.now()); err != nil {
			return err
		}
		if !res.HasNonce || string(res.Nonce) != string(nonce) {
			return errors.New("OCSP response does not carry the request nonce")
		}
		if res.Status != "good" {
			return fmt.Errorf("certificate %q is %s", c.Subject.CommonName, res.Status)
		}
	}
	return nil
}

func (a *DEA) now() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.clock()
}

// fanoutAfterLeave picks every other RI through which the device is still in the domain and
// that has not been triggered yet (seed 000 §7.5), and returns the function that triggers them,
// meant to run in the background after the response has been written (nil when there is no RI
// to trigger). Wait waits for it.
func (a *DEA) fanoutAfterLeave(dom, dev, from string) func() {
	a.mu.Lock()
	var targets []string
	for ri := range a.members[dom][dev] {
		if ri != from && !a.triggered[dom][dev][ri] {
			targets = append(targets, ri)
			setAdd(a.triggered, dom, dev, ri)
		}
	}
	a.mu.Unlock()
	if len(targets) == 0 {
		return nil
	}
	sort.Strings(targets)
	a.fanout.Add(1)
	return func() {
		defer a.fanout.Done()
		time.Sleep(fanoutDelay)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, ri := range targets {
			if err := a.sendTrigger(ctx, ri, dom, []string{dev}); err != nil {
				a.logf("leave trigger to %s: %v", ri, err)
			}
		}
	}
}

// Leave makes the listed devices leave a user domain on the DEA's own initiative (seed 000 §7.6):
// every RI through which one of them is in the domain gets a drmTrigger listing those devices.
// It returns once the triggers are delivered.
func (a *DEA) Leave(ctx context.Context, domainID string, deviceIDs []string) error {
	a.mu.Lock()
	if !a.domains[domainID] {
		a.mu.Unlock()
		return fmt.Errorf("sim: unknown user domain %q", domainID)
	}
	perRI := map[string][]string{}
	for _, dev := range deviceIDs {
		for ri := range a.members[domainID][dev] {
			perRI[ri] = append(perRI[ri], dev)
			setAdd(a.triggered, domainID, dev, ri)
		}
	}
	a.mu.Unlock()
	if len(perRI) == 0 {
		return fmt.Errorf("sim: none of the devices is in %s through any RI", domainID)
	}
	var errs []error
	for _, ri := range sortedKeys(perRI) {
		if err := a.sendTrigger(ctx, ri, domainID, perRI[ri]); err != nil {
			errs = append(errs, fmt.Errorf("trigger to %s: %w", ri, err))
		}
	}
	return errors.Join(errs...)
}

func (a *DEA) sendTrigger(ctx context.Context, riID, dom string, devs []string) error {
	a.mu.Lock()
	c := a.contexts[riID]
	faults, public := a.faults, a.public
	a.counter++
	id := fmt.Sprintf("trg-%d", a.counter)
	a.mu.Unlock()
	if c == nil {
		return fmt.Errorf("no RDP context with RI %s", riID)
	}
	msg, err := RDPLeaveTrigger{ID: id, ResID: a.id, ResAlias: a.cfg.Alias, Nonce: newNonce(), ReqURL: public + "/rdp",
		DomainID: dom, DeviceIDs: devs}.MAC(c.alg, c.mk, faults.BadMAC)
	if err != nil {
		return err
	}
	if _, _, _, err := post(ctx, a.client, c.url, CTSCE, msg); err != nil {
		return err
	}
	a.logf("triggered %s to remove %s from %s", riID, strings.Join(devs, ","), dom)
	return nil
}
