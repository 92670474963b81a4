package sim

import (
	"crypto/rsa"
	"crypto/sha1"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	d "github.com/roapproxy/roapproxy/decode"
)

// Message builders. Every ROAP PDU is built as a decode element tree and serialized with
// decode's canonicalizer, so what goes on the wire is already the exclusive canonical form
// (roap-core §1, "Canonical form"). Signed PDUs are built without their <signature>, the
// signature is computed over the canonical bytes of that tree (prefixed by the earlier messages
// of the run where ROAP says so), and then the <signature> element is appended as the last child.

// Content types used on the wire.
const (
	CTROAP    = d.MIMEPDU         // ROAP PDUs (both directions) and TokenDeliveryResponse
	CTTrigger = d.MIMETrig        // ROAP triggers
	CTSCE     = "application/xml" // SCE RDP messages and drmTriggers (contract choice)
	CTOCSPReq = "application/ocsp-request"
	CTOCSPRes = "application/ocsp-response"
)

// Namespaces used inside protected ROs.
const (
	nsODRLEX = "http://odrl.net/1.1/ODRL-EX"
	nsODRLDD = "http://odrl.net/1.1/ODRL-DD"
)

// ROAP statuses the peers send.
const (
	StatusSuccess          = "Success"
	StatusAbort            = "Abort"
	StatusNotSupported     = "NotSupported"
	StatusAccessDenied     = "AccessDenied"
	StatusNotFound         = "NotFound"
	StatusMalformed        = "MalformedRequest"
	StatusUnknownRequest   = "UnknownRequest"
	StatusUnsupportedVer   = "UnsupportedVersion"
	StatusNoChain          = "NoCertificateChain"
	StatusInvalidChain     = "InvalidCertificateChain"
	StatusSignatureError   = "SignatureError"
	StatusDeviceTimeError  = "DeviceTimeError"
	StatusNotRegistered    = "NotRegistered"
	StatusInvalidDomain    = "InvalidDomain"
	StatusDomainAccessDeny = "DomainAccessDenied"
	StatusTokenReportError = "TokenConsumptionReportError"
	StatusNoTokenReport    = "NoTokenConsumptionReport"
)

// rdpLeaveTriggerType is the drmTrigger type of seed 000 §7.6.1.
const rdpLeaveTriggerType = "rdpProxyLeaveUserDomain"

// roKeyID is the Id of the encKey that carries K_MAC || K_REK in a protected RO; it is the value
// in the SRM WBXML table (roap-core §5.13).
const roKeyID = "K_MAC_and_K_REK"

// TimeString formats t the way ROAP writes dateTime values: UTC, seconds, Z (roap-core §2.8).
func TimeString(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// Identifier builds an Identifier element named wrapper (deviceID, riID, reqID, …) holding a
// keyIdentifier of type roap:X509SPKIHash. The keyIdentifier declares xsi itself, which is where
// exclusive canonicalization puts the declaration (roap-core §2.3).
func Identifier(wrapper, id string) *d.Node {
	return d.El(wrapper, keyIdentifier("keyIdentifier", id))
}

func keyIdentifier(name, id string) *d.Node {
	return d.El(name, d.NS("xsi", d.NSXSI), d.A("algorithm", d.AlgSHA1), d.A("xsi:type", "roap:X509SPKIHash"),
		d.El("hash", id))
}

// spkiHashEl is the element form used inside ds:KeyInfo blocks.
func spkiHashEl(id string) *d.Node {
	return d.El("roap:X509SPKIHash", d.NS("roap", d.NSROAP), d.El("hash", id))
}

// ChainEl builds a certificateChain (or another element of the CertificateChain type).
func ChainEl(name string, chain [][]byte) *d.Node {
	if len(chain) == 0 {
		return nil
	}
	n := d.El(name)
	for _, c := range chain {
		n.Children = append(n.Children, d.El("certificate", b64(c)))
	}
	return n
}

func ocspEls(blobs [][]byte) []*d.Node {
	var out []*d.Node
	for _, b := range blobs {
		out = append(out, d.El("ocspResponse", b64(b)))
	}
	return out
}

// Extension builds one <extension xsi:type="roap:NAME"> with the given content.
func Extension(typ string, content ...any) *d.Node {
	items := append([]any{d.NS("xsi", d.NSXSI), d.A("xsi:type", "roap:"+typ)}, content...)
	return d.El("extension", items...)
}

func extensionsEl(exts ...*d.Node) *d.Node {
	var kept []*d.Node
	for _, e := range exts {
		if e != nil {
			kept = append(kept, e)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	return d.El("extensions", kept)
}

func roapRoot(kind string, items ...any) *d.Node {
	return d.El("roap:"+kind, append([]any{d.NS("roap", d.NSROAP)}, items...)...)
}

func optAttr(name, v string) any {
	if v == "" {
		return nil
	}
	return d.A(name, v)
}

func optEl(name, v string) *d.Node {
	if v == "" {
		return nil
	}
	return d.El(name, v)
}

func optTime(name string, t time.Time) *d.Node {
	if t.IsZero() {
		return nil
	}
	return d.El(name, TimeString(t))
}

func peerKeyExt(id string) *d.Node {
	if id == "" {
		return nil
	}
	return Extension("PeerKeyIdentifier", keyIdentifier("identifier", id))
}

func flagExt(on bool, typ string) *d.Node {
	if !on {
		return nil
	}
	return Extension(typ)
}

// failure builds the body of a non-Success response: the root with its status (and the other
// attributes given) and no children, which is what ROAP peers send (roap-core §3.1).
func failure(kind, status string, attrs ...any) []byte {
	return roapRoot(kind, append([]any{d.A("status", status)}, attrs...)...).Bytes()
}

// Sign appends the <signature> element to root and fills it with the RSA-PSS signature over
// prefix || canonical(root without signature). corrupt flips a bit of the signature afterwards
// (a fault for negative tests). It returns the canonical wire bytes.
func Sign(root *d.Node, key *rsa.PrivateKey, corrupt bool, prefix ...[]byte) ([]byte, error) {
	root.Remove("signature")
	sig := d.El("signature")
	root.Children = append(root.Children, sig)
	sig.Parent = root
	parts := append(append([][]byte(nil), prefix...), root.BytesWithout("signature"))
	s, err := SignPSS(key, parts...)
	if err != nil {
		return nil, err
	}
	v := b64(s)
	if corrupt {
		v = flipB64(v)
	}
	sig.SetText(v)
	return root.Bytes(), nil
}

// ---- registration (roap-core §5.1–5.4) ----

// DeviceHello is registration pass 1.
type DeviceHello struct {
	TriggerNonce       string
	Version            string
	DeviceIDs          []string
	Algorithms         []string
	CertificateCaching bool
}

// Bytes serializes the (unsigned) deviceHello.
func (m DeviceHello) Bytes() []byte {
	n := roapRoot("deviceHello", optAttr("triggerNonce", m.TriggerNonce), d.El("version", m.Version))
	for _, id := range m.DeviceIDs {
		n.Children = append(n.Children, Identifier("deviceID", id))
	}
	for _, a := range m.Algorithms {
		n.Children = append(n.Children, d.El("supportedAlgorithm", a))
	}
	if e := extensionsEl(flagExt(m.CertificateCaching, "CertificateCaching")); e != nil {
		n.Children = append(n.Children, e)
	}
	return n.Bytes()
}

// RIHello is registration pass 2.
type RIHello struct {
	Status             string
	SessionID          string
	Version            string
	RIID               string
	Algorithms         []string
	RINonce            string
	TrustedAuthorities []string
	ServerInfo         string
	PeerKeyID          string
	CertificateCaching bool
}

// Bytes serializes the (unsigned) riHello.
func (m RIHello) Bytes() []byte {
	if m.Status != StatusSuccess {
		return failure("riHello", m.Status, optAttr("sessionId", m.SessionID))
	}
	n := roapRoot("riHello", d.A("status", m.Status), d.A("sessionId", m.SessionID),
		d.El("selectedVersion", m.Version), Identifier("riID", m.RIID))
	for _, a := range m.Algorithms {
		n.Children = append(n.Children, d.El("selectedAlgorithm", a))
	}
	n.Children = append(n.Children, d.El("riNonce", m.RINonce))
	if len(m.TrustedAuthorities) > 0 {
		ta := d.El("trustedAuthorities")
		for _, id := range m.TrustedAuthorities {
			ta.Children = append(ta.Children, keyIdentifier("keyIdentifier", id))
		}
		n.Children = append(n.Children, ta)
	}
	n.Append(optEl("serverInfo", m.ServerInfo))
	if e := extensionsEl(peerKeyExt(m.PeerKeyID), flagExt(m.CertificateCaching, "CertificateCaching")); e != nil {
		n.Children = append(n.Children, e)
	}
	return n.Bytes()
}

// RegistrationRequest is registration pass 3.
type RegistrationRequest struct {
	SessionID          string
	TriggerNonce       string
	Nonce              string
	Time               time.Time
	Chain              [][]byte
	TrustedAuthorities []string
	ServerInfo         string
	PeerKeyID          string
	NoOCSP             bool
	DeviceDetails      []string // manufacturer, model, version
}

// Build returns the unsigned tree.
func (m RegistrationRequest) Build() *d.Node {
	n := roapRoot("registrationRequest", d.A("sessionId", m.SessionID), optAttr("triggerNonce", m.TriggerNonce),
		d.El("nonce", m.Nonce), d.El("time", TimeString(m.Time)), ChainEl("certificateChain", m.Chain))
	if len(m.TrustedAuthorities) > 0 {
		ta := d.El("trustedAuthorities")
		for _, id := range m.TrustedAuthorities {
			ta.Children = append(ta.Children, keyIdentifier("keyIdentifier", id))
		}
		n.Children = append(n.Children, ta)
	}
	n.Append(optEl("serverInfo", m.ServerInfo))
	var details *d.Node
	if len(m.DeviceDetails) == 3 {
		details = Extension("DeviceDetails", d.El("manufacturer", m.DeviceDetails[0]),
			d.El("model", m.DeviceDetails[1]), d.El("version", m.DeviceDetails[2]))
	}
	if e := extensionsEl(peerKeyExt(m.PeerKeyID), flagExt(m.NoOCSP, "NoOCSPResponse"), details); e != nil {
		n.Children = append(n.Children, e)
	}
	return n
}

// Sign signs over deviceHello || riHello || this request without its signature (roap-core §7.2).
func (m RegistrationRequest) Sign(key *rsa.PrivateKey, corrupt bool, deviceHello, riHello []byte) ([]byte, error) {
	return Sign(m.Build(), key, corrupt, deviceHello, riHello)
}

// RegistrationResponse is registration pass 4.
type RegistrationResponse struct {
	Status    string
	SessionID string
	RIURL     string
	Chain     [][]byte
	OCSP      [][]byte
	WhiteList []string
}

// Sign signs over the registrationRequest as sent (with its signature) || this response
// without its signature. A failure response is unsigned and empty.
func (m RegistrationResponse) Sign(key *rsa.PrivateKey, corrupt bool, request []byte) ([]byte, error) {
	if m.Status != StatusSuccess {
		return failure("registrationResponse", m.Status, optAttr("sessionId", m.SessionID)), nil
	}
	n := roapRoot("registrationResponse", d.A("status", m.Status), d.A("sessionId", m.SessionID),
		d.El("riURL", m.RIURL), ChainEl("certificateChain", m.Chain), ocspEls(m.OCSP))
	if len(m.WhiteList) > 0 {
		wl := Extension("DomainNameWhiteList")
		for _, h := range m.WhiteList {
			wl.Children = append(wl.Children, d.El("dn", h))
			wl.Children[len(wl.Children)-1].Parent = wl
		}
		n.Children = append(n.Children, extensionsEl(wl))
	}
	return Sign(n, key, corrupt, request)
}

// ---- RO acquisition (roap-core §5.5, §5.6, §5.13) ----

// RORequest is the device's 2-pass RO request.
type RORequest struct {
	TriggerNonce string
	DeviceID     string
	DomainID     string
	RIID         string
	Nonce        string
	Time         time.Time
	ROIDs        []string
	Chain        [][]byte
	PeerKeyID    string
	NoOCSP       bool
}

// Build returns the unsigned tree.
func (m RORequest) Build() *d.Node {
	info := d.El("roInfo")
	for _, id := range m.ROIDs {
		info.Children = append(info.Children, d.El("roID", id))
	}
	return roapRoot("roRequest", optAttr("triggerNonce", m.TriggerNonce),
		Identifier("deviceID", m.DeviceID), optEl("domainID", m.DomainID), Identifier("riID", m.RIID),
		d.El("nonce", m.Nonce), d.El("time", TimeString(m.Time)), info, ChainEl("certificateChain", m.Chain),
		extensionsEl(peerKeyExt(m.PeerKeyID), flagExt(m.NoOCSP, "NoOCSPResponse")))
}

// ROParams describe one protected RO for a device.
type ROParams struct {
	ID        string // xs:ID of the RO
	RIID      string
	ContentID string
	CEK       []byte // 16-byte content encryption key, wrapped under K_REK
	DeviceID  string
	DeviceKey *rsa.PublicKey
}

// ProtectedRO builds a roap:protectedRO for a device (roap-core §5.13, §7.5, §7.6): the RO's
// K_MAC || K_REK travel RSA-KEM-wrapped to the device key, the CEK is AES-wrapped under K_REK
// inside the rights, DigestValue is SHA-1 of the canonical roap:ro subtree and SignatureValue is
// HMAC-SHA1(K_MAC, canonical ds:SignedInfo).
func ProtectedRO(p ROParams) (*d.Node, error) {
	kmac, krek := randomBytes(16), randomBytes(16)
	if len(p.CEK) != 16 {
		return nil, fmt.Errorf("sim: CEK must be 16 bytes, got %d", len(p.CEK))
	}
	wrappedCEK, err := AESWrap(krek, p.CEK)
	if err != nil {
		return nil, err
	}
	c, err := KEMEncrypt(nil, p.DeviceKey, append(append([]byte(nil), kmac...), krek...))
	if err != nil {
		return nil, err
	}
	rights := d.El("rights", d.NS("o-ex", nsODRLEX), d.NS("o-dd", nsODRLDD), d.A("o-ex:id", "REL1"),
		d.El("o-ex:context", d.El("o-dd:version", "2.0"), d.El("o-dd:uid", p.ID)),
		d.El("o-ex:agreement",
			d.El("o-ex:asset", d.A("o-ex:id", "asset1"),
				d.El("o-ex:context", d.El("o-dd:uid", p.ContentID)),
				d.El("ds:KeyInfo", d.NS("ds", d.NSDS),
					d.El("xenc:EncryptedKey", d.NS("xenc", d.NSXENC),
						d.El("xenc:EncryptionMethod", d.A("Algorithm", d.AlgKWAES)),
						d.El("ds:KeyInfo", d.El("ds:RetrievalMethod", d.A("URI", "#"+roKeyID))),
						d.El("xenc:CipherData", d.El("xenc:CipherValue", b64(wrappedCEK)))))),
			d.El("o-ex:permission", d.El("o-ex:asset", d.A("o-ex:idref", "asset1")), d.El("o-dd:play"))))
	ro := d.El("roap:ro", d.NS("roap", d.NSROAP), d.A("id", p.ID), d.A("version", "2.0"),
		Identifier("riID", p.RIID), rights,
		d.El("encKey", d.A("Id", roKeyID),
			d.El("xenc:EncryptionMethod", d.NS("xenc", d.NSXENC), d.A("Algorithm", d.AlgKEM)),
			d.El("ds:KeyInfo", d.NS("ds", d.NSDS), spkiHashEl(p.DeviceID)),
			d.El("xenc:CipherData", d.NS("xenc", d.NSXENC), d.El("xenc:CipherValue", b64(c)))))
	digest := sha1.Sum(ro.Bytes()) // subtree canonical form: carries its own xmlns:roap
	si := d.El("ds:SignedInfo", d.NS("ds", d.NSDS),
		d.El("ds:CanonicalizationMethod", d.A("Algorithm", d.AlgC14N)),
		d.El("ds:SignatureMethod", d.A("Algorithm", d.AlgHMAC1)),
		d.El("ds:Reference", d.A("URI", "#"+p.ID),
			d.El("ds:DigestMethod", d.A("Algorithm", d.AlgSHA1)),
			d.El("ds:DigestValue", b64(digest[:]))))
	mac, err := MAC(HMACSHA1, kmac, si.Bytes())
	if err != nil {
		return nil, err
	}
	macEl := d.El("mac", si, d.El("ds:SignatureValue", d.NS("ds", d.NSDS), b64(mac)),
		d.El("ds:KeyInfo", d.NS("ds", d.NSDS), d.El("ds:RetrievalMethod", d.A("URI", "#"+roKeyID))))
	return d.El("roap:protectedRO", d.NS("roap", d.NSROAP), ro, macEl), nil
}

// ROResponse is the RI's roResponse (2-pass when Nonce is set, 1-pass otherwise).
type ROResponse struct {
	Status   string
	DeviceID string
	RIID     string
	Nonce    string
	ROs      []*d.Node
	Chain    [][]byte
	OCSP     [][]byte
}

// Sign serializes and signs the response (failures are unsigned and empty).
func (m ROResponse) Sign(key *rsa.PrivateKey, corrupt bool) ([]byte, error) {
	if m.Status != StatusSuccess {
		return failure("roResponse", m.Status), nil
	}
	n := roapRoot("roResponse", d.A("status", m.Status), Identifier("deviceID", m.DeviceID),
		Identifier("riID", m.RIID), optEl("nonce", m.Nonce), m.ROs, ChainEl("certificateChain", m.Chain), ocspEls(m.OCSP))
	return Sign(n, key, corrupt)
}

// ---- domains (roap-core §5.7–5.10, §7.7) ----

// JoinDomainRequest is the device's joinDomainRequest.
type JoinDomainRequest struct {
	TriggerNonce string
	DeviceID     string
	RIID         string
	Nonce        string
	Time         time.Time
	DomainID     string
	Chain        [][]byte
	PeerKeyID    string
	NoOCSP       bool
}

// Build returns the unsigned tree.
func (m JoinDomainRequest) Build() *d.Node {
	return roapRoot("joinDomainRequest", optAttr("triggerNonce", m.TriggerNonce),
		Identifier("deviceID", m.DeviceID), Identifier("riID", m.RIID), d.El("nonce", m.Nonce),
		d.El("time", TimeString(m.Time)), d.El("domainID", m.DomainID), ChainEl("certificateChain", m.Chain),
		extensionsEl(peerKeyExt(m.PeerKeyID), flagExt(m.NoOCSP, "NoOCSPResponse")))
}

// DomainKey builds one domainKey element: K_MAC || K_D RSA-KEM-wrapped to the device, the RI's
// ID, and HMAC-SHA1(K_MAC, canonical domainKey without mac) (roap-core §5.8, §7.7).
func DomainKey(domainID, riID, deviceID string, deviceKey *rsa.PublicKey, kd []byte) (*d.Node, error) {
	kmac := randomBytes(16)
	c, err := KEMEncrypt(nil, deviceKey, append(append([]byte(nil), kmac...), kd...))
	if err != nil {
		return nil, err
	}
	dk := d.El("domainKey",
		d.El("encKey", d.A("Id", domainID),
			d.El("xenc:EncryptionMethod", d.NS("xenc", d.NSXENC), d.A("Algorithm", d.AlgKEM)),
			d.El("ds:KeyInfo", d.NS("ds", d.NSDS), spkiHashEl(deviceID)),
			d.El("xenc:CipherData", d.NS("xenc", d.NSXENC), d.El("xenc:CipherValue", b64(c)))),
		Identifier("riID", riID))
	mac, err := MAC(HMACSHA1, kmac, dk.Bytes())
	if err != nil {
		return nil, err
	}
	m := d.El("mac", b64(mac))
	m.Parent = dk
	dk.Children = append(dk.Children, m)
	return dk, nil
}

// JoinDomainResponse is the RI's answer to a joinDomainRequest.
type JoinDomainResponse struct {
	Status    string
	DeviceID  string
	RIID      string
	Nonce     string
	NotAfter  string // dateTime or "Infinite"
	DomainKey *d.Node
	Chain     [][]byte
	OCSP      [][]byte
}

// Sign serializes and signs the response (failures are unsigned and empty).
func (m JoinDomainResponse) Sign(key *rsa.PrivateKey, corrupt bool) ([]byte, error) {
	if m.Status != StatusSuccess {
		return failure("joinDomainResponse", m.Status), nil
	}
	n := roapRoot("joinDomainResponse", d.A("status", m.Status), Identifier("deviceID", m.DeviceID),
		Identifier("riID", m.RIID), d.El("nonce", m.Nonce),
		d.El("domainInfo", d.El("notAfter", m.NotAfter), m.DomainKey),
		ChainEl("certificateChain", m.Chain), ocspEls(m.OCSP))
	return Sign(n, key, corrupt)
}

// LeaveDomainRequest is the device's leaveDomainRequest.
type LeaveDomainRequest struct {
	TriggerNonce string
	DeviceID     string
	RIID         string
	Nonce        string
	Time         time.Time
	DomainID     string
	Chain        [][]byte
	NotMember    bool
}

// Build returns the unsigned tree.
func (m LeaveDomainRequest) Build() *d.Node {
	return roapRoot("leaveDomainRequest", optAttr("triggerNonce", m.TriggerNonce),
		Identifier("deviceID", m.DeviceID), Identifier("riID", m.RIID), d.El("nonce", m.Nonce),
		d.El("time", TimeString(m.Time)), d.El("domainID", m.DomainID), ChainEl("certificateChain", m.Chain),
		extensionsEl(flagExt(m.NotMember, "NotDomainMember")))
}

// LeaveDomainResponse is the RI's (unsigned) leaveDomainResponse.
type LeaveDomainResponse struct {
	Status   string
	Nonce    string
	DomainID string
}

// Bytes serializes it; a failure carries the status only.
func (m LeaveDomainResponse) Bytes() []byte {
	if m.Status != StatusSuccess {
		return failure("leaveDomainResponse", m.Status)
	}
	return roapRoot("leaveDomainResponse", d.A("status", m.Status), d.El("nonce", m.Nonce), d.El("domainID", m.DomainID)).Bytes()
}

// ---- triggers (roap-core §6) ----

// Trigger is a ROAP trigger. Type is registrationRequest, roAcquisition, joinDomain or
// leaveDomain; Extended wraps it as a DRM 2.1 <extendedTrigger type="Type">.
type Trigger struct {
	Type       string
	Extended   bool
	ID         string
	RIID       string
	RIAlias    string
	Nonce      string
	ROAPURL    string
	DomainID   string
	ROIDs      []string
	ContentIDs []string
}

// Bytes serializes the (unsigned) trigger.
func (t Trigger) Bytes() []byte {
	name := t.Type
	var typeAttr any
	if t.Extended {
		name, typeAttr = "extendedTrigger", d.A("type", t.Type)
	}
	body := d.El(name, optAttr("id", t.ID), typeAttr, Identifier("riID", t.RIID), optEl("riAlias", t.RIAlias),
		optEl("nonce", t.Nonce), d.El("roapURL", t.ROAPURL), optEl("domainID", t.DomainID))
	for i, id := range t.ROIDs {
		body.Children = append(body.Children, d.El("roID", id))
		if i < len(t.ContentIDs) {
			body.Children = append(body.Children, d.El("contentID", t.ContentIDs[i]))
		}
	}
	return roapRoot("roapTrigger", d.A("version", "1.0"), body).Bytes()
}

// ---- tokens (seed 001; request and report shapes are the contract's choice) ----

// TokenRequest asks an RI for tokens.
type TokenRequest struct {
	TriggerNonce    string
	DeviceID        string
	RIID            string
	Nonce           string
	Time            time.Time
	TokenDeliveryID string
	Chain           [][]byte
	PeerKeyID       string
}

// Build returns the unsigned tree.
func (m TokenRequest) Build() *d.Node {
	return roapRoot("tokenRequest", optAttr("triggerNonce", m.TriggerNonce),
		Identifier("deviceID", m.DeviceID), Identifier("riID", m.RIID), d.El("nonce", m.Nonce),
		d.El("time", TimeString(m.Time)), optEl("tokenDeliveryID", m.TokenDeliveryID),
		ChainEl("certificateChain", m.Chain), extensionsEl(peerKeyExt(m.PeerKeyID)))
}

// TokenConsumptionReport reports consumption of one delivery to its tokenReportingURL.
type TokenConsumptionReport struct {
	DeviceID        string
	RIID            string
	Nonce           string
	Time            time.Time
	TokenDeliveryID string
	TokensConsumed  int
	Chain           [][]byte
}

// Build returns the unsigned tree.
func (m TokenConsumptionReport) Build() *d.Node {
	return roapRoot("tokenConsumptionReport", Identifier("deviceID", m.DeviceID), Identifier("riID", m.RIID),
		d.El("nonce", m.Nonce), d.El("time", TimeString(m.Time)), d.El("tokenDeliveryID", m.TokenDeliveryID),
		d.El("tokensConsumed", strconv.Itoa(m.TokensConsumed)), ChainEl("certificateChain", m.Chain))
}

// TokenDeliveryResponse is seed 001 §9.2.3: 2-pass when Nonce is set, 1-pass otherwise.
type TokenDeliveryResponse struct {
	Status          string
	DeviceID        string
	RIID            string
	TokenDeliveryID string
	Nonce           string
	Quantity        int
	ReportingURL    string
	Earliest        time.Time
	Latest          time.Time
	LTCT            time.Time // latestTokenConsumptionTime
	Chain           [][]byte
	OCSP            [][]byte
	Movable         bool
	DomainID        string // DomainID extension
}

// Sign serializes and signs the response (failures are unsigned and empty).
func (m TokenDeliveryResponse) Sign(key *rsa.PrivateKey, corrupt bool) ([]byte, error) {
	if m.Status != StatusSuccess {
		return failure("TokenDeliveryResponse", m.Status), nil
	}
	var dom *d.Node
	if m.DomainID != "" {
		dom = Extension("DomainID", d.El("domainID", m.DomainID))
	}
	n := roapRoot("TokenDeliveryResponse", d.A("status", m.Status), Identifier("deviceID", m.DeviceID),
		Identifier("riID", m.RIID), d.El("tokenDeliveryID", m.TokenDeliveryID), optEl("nonce", m.Nonce),
		d.El("tokenQuantity", strconv.Itoa(m.Quantity)), optEl("tokenReportingURL", m.ReportingURL),
		optTime("earliestReportingTime", m.Earliest), optTime("latestReportingTime", m.Latest),
		optTime("latestTokenConsumptionTime", m.LTCT), ChainEl("certificateChain", m.Chain), ocspEls(m.OCSP),
		extensionsEl(flagExt(m.Movable, "Movable"), dom))
	return Sign(n, key, corrupt)
}

// ---- SCE RDP (seed 000 §7.5, §7.6) ----

var rdpRootDecls = []d.Attr{d.NS("dom", d.NSDOM), d.NS("gen", d.NSGEN), d.NS("roap", d.NSROAP)}

// rdpWire MACs an RDP message and serializes it the way the contract shapes them: the canonical
// bytes, except that the root declares dom, gen and roap (the roap prefix appears only inside
// xsi:type values, which exclusive canonicalization does not see). The MAC is over the
// exclusive canonical form without the signature, which the extra declarations do not change.
func rdpWire(root *d.Node, alg MACAlg, mk []byte, corrupt bool) ([]byte, error) {
	root.Remove("signature")
	sig := d.El("signature")
	root.Children = append(root.Children, sig)
	sig.Parent = root
	mac, err := MAC(alg, mk, root.BytesWithout("signature"))
	if err != nil {
		return nil, err
	}
	v := b64(mac)
	if corrupt {
		v = flipB64(v)
	}
	sig.SetText(v)
	return declareOnRoot(root.Bytes(), root.QName(), rdpRootDecls)
}

// declareOnRoot rewrites canonical bytes so that the root start tag declares every binding in
// decls (in prefix order) and no descendant repeats one of them.
func declareOnRoot(c []byte, qname string, decls []d.Attr) ([]byte, error) {
	s := string(c)
	open := "<" + qname
	if !strings.HasPrefix(s, open) {
		return nil, errors.New("sim: canonical bytes do not start with the root name")
	}
	rest := s[len(open):]
	var b strings.Builder
	b.WriteString(open)
	for _, a := range decls {
		decl := fmt.Sprintf(` xmlns:%s="%s"`, a.Local, a.Value)
		b.WriteString(decl)
		rest = strings.ReplaceAll(rest, decl, "")
	}
	b.WriteString(rest)
	return []byte(b.String()), nil
}

// RDPLeaveRequest is dom:rdpProxyLeaveUserDomainRequest (RI → DEA).
type RDPLeaveRequest struct {
	ReqID       string
	ResID       string
	Nonce       string
	Chain       [][]byte
	LDR         []byte // the device's leaveDomainRequest exactly as received
	DeviceChain [][]byte
}

// MAC serializes the request and MACs it with the RI↔DEA key.
func (m RDPLeaveRequest) MAC(alg MACAlg, mk []byte, corrupt bool) ([]byte, error) {
	n := d.El("dom:rdpProxyLeaveUserDomainRequest", rdpRootDecls,
		Identifier("reqID", m.ReqID), Identifier("resID", m.ResID), d.El("nonce", m.Nonce),
		ChainEl("certificateChain", m.Chain),
		d.El("reqInfo", d.El("dom:rdpProxyLeaveUserDomainRequestInformation",
			d.El("leaveDomainRequest", b64(m.LDR)), ChainEl("deviceCertificateChain", m.DeviceChain))))
	return rdpWire(n, alg, mk, corrupt)
}

// RDPLeaveResponse is dom:rdpProxyLeaveUserDomainResponse (DEA → RI). A failure keeps the GEN
// envelope (reqID, resID, nonce, signature) without resInfo, so the RI can still check the MAC
// (seed 000 §7.5.3.2 makes the RI verify every response before forwarding its status).
type RDPLeaveResponse struct {
	Status   string
	ReqID    string
	ResID    string
	Nonce    string
	DomainID string
	DeviceID string
}

// MAC serializes the response and MACs it with the RI↔DEA key.
func (m RDPLeaveResponse) MAC(alg MACAlg, mk []byte, corrupt bool) ([]byte, error) {
	var info *d.Node
	if m.Status == StatusSuccess {
		info = d.El("resInfo", d.El("dom:rdpProxyLeaveUserDomainResponseInformation",
			d.El("userDomainId", m.DomainID), Identifier("deviceId", m.DeviceID)))
	}
	n := d.El("dom:rdpProxyLeaveUserDomainResponse", rdpRootDecls, d.A("status", m.Status),
		Identifier("reqID", m.ReqID), Identifier("resID", m.ResID), d.El("nonce", m.Nonce), info)
	return rdpWire(n, alg, mk, corrupt)
}

// RDPLeaveTrigger is the gen:drmTrigger of type rdpProxyLeaveUserDomain (DEA → RI).
type RDPLeaveTrigger struct {
	ID        string
	ResID     string
	ResAlias  string
	Nonce     string
	ReqURL    string
	DomainID  string
	DeviceIDs []string
}

// MAC serializes the trigger and MACs it with the RI↔DEA key.
func (m RDPLeaveTrigger) MAC(alg MACAlg, mk []byte, corrupt bool) ([]byte, error) {
	info := d.El("dom:rdpProxyLeaveUserDomainTrgInformation", d.El("domainID", d.A("domainID", m.DomainID)))
	for _, id := range m.DeviceIDs {
		info.Children = append(info.Children, Identifier("deviceID", id))
	}
	n := d.El("gen:drmTrigger", rdpRootDecls, optAttr("id", m.ID), d.A("type", rdpLeaveTriggerType), d.A("version", "1.0"),
		Identifier("resID", m.ResID), optEl("resAlias", m.ResAlias), d.El("nonce", m.Nonce),
		d.El("reqURL", m.ReqURL), d.El("body", d.El("trgInfo", info)))
	return rdpWire(n, alg, mk, corrupt)
}

// ---- reading messages (the peers parse what they receive with decode's scanner) ----

// parseMsg parses a received body and checks its root local name against want (any when empty).
func parseMsg(body []byte, want ...string) (*d.Node, error) {
	doc, err := d.ParseXML(body, d.DefaultLimits)
	if err != nil {
		return nil, fmt.Errorf("body does not parse: %w", err)
	}
	if len(want) == 0 {
		return doc.Root, nil
	}
	for _, w := range want {
		if doc.Root.Local == w {
			return doc.Root, nil
		}
	}
	return nil, fmt.Errorf("expected <%s>, got <%s>", strings.Join(want, "> or <"), doc.Root.QName())
}

// signedPart splits a received signed PDU into the bytes its sender signed (the raw body with the
// top-level <signature> element cut out, roap-core §7.2) and the decoded signature.
func signedPart(raw []byte, root *d.Node) (signed, sig []byte, err error) {
	s := root.Child("signature")
	if s == nil {
		return nil, nil, errors.New("message has no <signature>")
	}
	sig, err = d.DecodeBase64(s.TextContent())
	if err != nil {
		return nil, nil, fmt.Errorf("signature is not base64: %w", err)
	}
	signed = make([]byte, 0, len(raw))
	signed = append(append(signed, raw[:s.Start]...), raw[s.End:]...)
	return signed, sig, nil
}

// macPart returns the canonical bytes an RDP MAC covers (the message without its signature
// element, exclusive canonical form) and the decoded MAC.
func macPart(root *d.Node) (covered, mac []byte, err error) {
	s := root.Child("signature")
	if s == nil {
		return nil, nil, errors.New("message has no <signature>")
	}
	mac, err = d.DecodeBase64(s.TextContent())
	if err != nil {
		return nil, nil, fmt.Errorf("signature is not base64: %w", err)
	}
	return d.Canonical(root, func(n *d.Node) bool { return n.Parent == root && n.Local == "signature" }), mac, nil
}

// idAt returns the key identifier hash of the Identifier at path below n.
func idAt(n *d.Node, path string) string { return d.IdentifierHash(n.Find(path)) }

// textAt returns the text of the element at path below n.
func textAt(n *d.Node, path string) string { return n.Find(path).TextContent() }

// chainAt returns the DER certificates of the CertificateChain at path below n (nil if absent).
func chainAt(n *d.Node, path string) ([][]byte, error) {
	c := n.Find(path)
	if c == nil {
		return nil, nil
	}
	var out [][]byte
	for _, e := range c.ChildrenNamed("certificate") {
		der, err := d.DecodeBase64(e.TextContent())
		if err != nil {
			return nil, fmt.Errorf("certificate is not base64: %w", err)
		}
		out = append(out, der)
	}
	if len(out) == 0 {
		return nil, errors.New("empty certificate chain")
	}
	return out, nil
}

// status returns the status attribute of a response.
func status(root *d.Node) string {
	v, _ := root.Attr("status")
	return v
}

// peerKeyID returns the identifier a PeerKeyIdentifier extension names ("" when absent).
func peerKeyID(root *d.Node) string {
	ext := root.Child("extensions")
	if ext == nil {
		return ""
	}
	for _, e := range ext.ChildrenNamed("extension") {
		for _, a := range e.Attrs {
			if a.Local == "type" && strings.HasSuffix(a.Value, ":PeerKeyIdentifier") {
				return d.IdentifierHash(e.Child("identifier"))
			}
		}
	}
	return ""
}

// ---- metering (roap-core §5.11, §5.12; DRM 2.1) ----

// meteringKeyID is the Id of the encKey that carries K_MAC || K_MEK in a metering report.
const meteringKeyID = "K_MEK_and_K_MAC"

// MeteringReportSubmit is the device's meteringReportSubmit. The report travels encrypted to the
// RI: K_MAC || K_MEK RSA-KEM-wrapped to the RI key, the report AES-128-CBC under K_MEK, and a
// MAC with K_MAC over the canonical meteringReport without its mac (roap-core §5.11, §7.8). The
// plaintext format is not public; the simulation sends a small XML document of its own.
type MeteringReportSubmit struct {
	TriggerNonce string
	DeviceID     string
	RIID         string
	Nonce        string
	Time         time.Time
	Report       []byte
	RIKey        *rsa.PublicKey
	Chain        [][]byte
}

// Build returns the unsigned tree.
func (m MeteringReportSubmit) Build() (*d.Node, error) {
	kmac, kmek := randomBytes(16), randomBytes(16)
	c, err := KEMEncrypt(nil, m.RIKey, append(append([]byte(nil), kmac...), kmek...))
	if err != nil {
		return nil, err
	}
	enc, err := aesCBCEncrypt(kmek, m.Report)
	if err != nil {
		return nil, err
	}
	report := d.El("meteringReport",
		d.El("encryptedMeteringReport",
			d.El("xenc:EncryptedData", d.NS("xenc", d.NSXENC), d.A("Type", d.NSXENC+"Content"),
				d.El("xenc:EncryptionMethod", d.A("Algorithm", d.NSXENC+"aes128-cbc")),
				d.El("ds:KeyInfo", d.NS("ds", d.NSDS), d.El("ds:RetrievalMethod", d.A("URI", "#"+meteringKeyID))),
				d.El("xenc:CipherData", d.El("xenc:CipherValue", b64(enc))))),
		d.El("encKey", d.A("Id", meteringKeyID),
			d.El("xenc:EncryptionMethod", d.NS("xenc", d.NSXENC), d.A("Algorithm", d.AlgKEM)),
			d.El("ds:KeyInfo", d.NS("ds", d.NSDS), spkiHashEl(m.RIID)),
			d.El("xenc:CipherData", d.NS("xenc", d.NSXENC), d.El("xenc:CipherValue", b64(c)))))
	mac, err := MAC(HMACSHA1, kmac, report.Bytes())
	if err != nil {
		return nil, err
	}
	macEl := d.El("mac", b64(mac))
	macEl.Parent = report
	report.Children = append(report.Children, macEl)
	return roapRoot("meteringReportSubmit", optAttr("triggerNonce", m.TriggerNonce),
		Identifier("deviceID", m.DeviceID), Identifier("riID", m.RIID), d.El("nonce", m.Nonce),
		d.El("time", TimeString(m.Time)), report, ChainEl("certificateChain", m.Chain)), nil
}

// MeteringReportResponse is the RI's answer to a meteringReportSubmit.
type MeteringReportResponse struct {
	Status          string
	DeviceID        string
	RIID            string
	Nonce           string
	Chain           [][]byte
	OCSP            [][]byte
	PostResponseURL string
}

// Sign serializes and signs the response (failures are unsigned and empty).
func (m MeteringReportResponse) Sign(key *rsa.PrivateKey, corrupt bool) ([]byte, error) {
	if m.Status != StatusSuccess {
		return failure("meteringReportResponse", m.Status), nil
	}
	var pr *d.Node
	if m.PostResponseURL != "" {
		// The type name of this extension is not public; Symbian only looks for prURL.
		pr = Extension("PostResponseURL", d.El("prURL", m.PostResponseURL))
	}
	n := roapRoot("meteringReportResponse", d.A("status", m.Status), Identifier("deviceID", m.DeviceID),
		Identifier("riID", m.RIID), d.El("nonce", m.Nonce), ChainEl("certificateChain", m.Chain), ocspEls(m.OCSP),
		extensionsEl(pr))
	return Sign(n, key, corrupt)
}

// openMeteringReport checks and decrypts the meteringReport of a received submit with the RI's
// private key. It returns the metering status to answer with when it fails.
func openMeteringReport(report *d.Node, key *rsa.PrivateKey) ([]byte, string, error) {
	if report == nil {
		return nil, "MalformedMeteringReport", errors.New("no meteringReport")
	}
	c, err := d.DecodeBase64(textAt(report, "encKey/CipherData/CipherValue"))
	if err != nil {
		return nil, "MalformedMeteringReport", err
	}
	keys, err := KEMDecrypt(key, c)
	if err != nil || len(keys) != 32 {
		return nil, "UnableToDecryptMeteringReport", fmt.Errorf("cannot unwrap K_MAC||K_MEK: %v", err)
	}
	mac, err := d.DecodeBase64(textAt(report, "mac"))
	if err != nil {
		return nil, "MalformedMeteringReport", err
	}
	covered := d.Canonical(report, func(n *d.Node) bool { return n.Parent == report && n.Local == "mac" })
	if err := CheckMAC(HMACSHA1, keys[:16], covered, mac); err != nil {
		return nil, "UnableToValidateMeteringReportMAC", err
	}
	enc, err := d.DecodeBase64(textAt(report, "encryptedMeteringReport/EncryptedData/CipherData/CipherValue"))
	if err != nil {
		return nil, "MalformedMeteringReport", err
	}
	plain, err := aesCBCDecrypt(keys[16:], enc)
	if err != nil {
		return nil, "UnableToDecryptMeteringReport", err
	}
	return plain, "", nil
}
