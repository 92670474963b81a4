package decode

import (
	"crypto/sha1"
	"encoding/base64"
	"strings"
)

// ROAP PDUs (roap-core §5). Every handler follows the same pattern: family and role, the common
// request or response attributes, the presence table of the variant (Succ/Fail for responses),
// message-specific value checks, the identifying values, and the span of the top-level
// signature for signed kinds. Judgements that need other messages or keys live in verify/.

// roapSpaces are the namespaces a ROAP root may be in: roap-1.0 (DRM 2.0 and 2.1) and the DRM 2.2
// candidate roap-1.2 (sce-token §9 rule 1 classifies both as ROAP).
var roapSpaces = []string{NSROAP, NSROAP12}

// Rules of the ROAP PDUs.
var (
	roapRuleContentType  = DefineRule("decode", "ROAP-CONTENT-TYPE", SevWarning, "roap-core §1, §9.1, §6.5", "Serve ROAP PDUs as application/vnd.oma.drm.roap-pdu+xml, triggers as roap-trigger+xml (or +wbxml) and stand-alone ROs as application/vnd.oma.drm.ro+xml; Symbian rejects other content types")
	roapRuleDirection    = DefineRule("decode", "ROAP-DIRECTION", SevWarning, "roap-core §9.1", "Device requests travel in HTTP request bodies and RI responses in HTTP response bodies; check which side of the exchange produced this PDU")
	roapRulePair         = DefineRule("decode", "ROAP-RESP-PAIR", SevWarning, "roap-core §9.2", "A response must answer the request of its own protocol (riHello answers deviceHello, roResponse answers roRequest …); check the RI's dispatch")
	roapRuleErrRedirect  = DefineRule("decode", "ROAP-ERROR-REDIRECT", SevWarning, "roap-core §3.1", "errorRedirectURL belongs on failed responses only; drop it from a Success response")
	roapRuleExtPlace     = DefineRule("decode", "ROAP-EXT-PLACEMENT", SevInfo, "roap-core §3.5", "A known extension appears in a message the reference does not list it for; check that the peer means what it sent")
	roapRuleDomainIDForm = DefineRule("decode", "ROAP-DOMAINID-FORM", SevWarning, "roap-core §3.3; sce-token §6.1", "A ROAP Domain ID is a base plus a 3-digit generation, at most 20 characters; fix the domain naming")

	roapRuleDHShape      = DefineRule("decode", "ROAP-DH-SHAPE", SevError, "roap-core §5.1", "deviceHello children must be version, deviceID (1..n), supportedAlgorithm*, extensions? in that order")
	roapRuleDHVersion    = DefineRule("decode", "ROAP-DH-VERSION", SevWarning, "roap-core §1, §3.3", "The ROAP version is major.minor, 1.0 for DRM 2.0 or 1.1 for DRM 2.1; check which version the agent offers")
	roapRuleRIHelloShape = DefineRule("decode", "ROAP-RIHELLO-SHAPE", SevError, "roap-core §5.2", "A Success riHello carries sessionId and selectedVersion, riID, selectedAlgorithm*, riNonce, trustedAuthorities?, serverInfo?, extensions? in that order")
	roapRuleRegReqShape  = DefineRule("decode", "ROAP-REGREQ-SHAPE", SevError, "roap-core §5.3", "registrationRequest carries sessionId and nonce, time, certificateChain?, trustedAuthorities?, serverInfo?, extensions?, signature in that order")
	roapRuleRegRespShape = DefineRule("decode", "ROAP-REGRESP-SHAPE", SevError, "roap-core §5.4", "A Success registrationResponse carries sessionId and riURL, certificateChain?, ocspResponse*, extensions?, signature in that order")
	roapRuleROReqShape   = DefineRule("decode", "ROAP-ROREQ-SHAPE", SevError, "roap-core §5.5", "roRequest children must be deviceID, domainID?, riID, nonce, time, roInfo (roID with optional dcfHash, 1..n), certificateChain?, extensions?, signature")
	roapRuleRORespShape  = DefineRule("decode", "ROAP-RORESP-SHAPE", SevError, "roap-core §5.6", "A Success roResponse carries deviceID, riID, nonce (2-pass only; absent in 1-pass), protectedRO (1..n), certificateChain?, ocspResponse*, extensions?, signature in that order")
	roapRuleROShape      = DefineRule("decode", "ROAP-RO-SHAPE", SevError, "roap-core §5.13", "A protectedRO holds roap:ro (id and version attributes; riID, rights, signature?, timeStamp?, encKey) followed by mac")
	roapRuleROMAC        = DefineRule("decode", "ROAP-RO-MAC", SevError, "roap-core §5.13, §7.6", "The RO mac holds ds:SignedInfo whose Reference points at #<ro id> with a 20-byte SHA-1 DigestValue, and a ds:SignatureValue; without them the device cannot check RO integrity")
	roapRuleROEncKey     = DefineRule("decode", "ROAP-RO-ENCKEY", SevWarning, "roap-core §5.13, §7.5", "Device ROs wrap K_MAC‖K_REK with RSA-KEM (or CMLA) to the device key; Domain ROs wrap them with kw-aes128 under the Domain Key and name the domain in KeyInfo; check the RO's encKey")
	roapRuleRODomainSig  = DefineRule("decode", "ROAP-RO-DOMAIN-SIG", SevWarning, "roap-core §5.13, §7.3 [K]", "A Domain RO carries the RI's signature inside roap:ro so that every domain member can authenticate it; add it")
	roapRuleRORiID       = DefineRule("decode", "ROAP-RO-RIID", SevWarning, "roap-core §5.6, §5.13", "The riID inside each RO should be the riID of the roResponse that carries it; check which RI issued the RO")
	roapRuleJDReqShape   = DefineRule("decode", "ROAP-JDREQ-SHAPE", SevError, "roap-core §5.7", "joinDomainRequest children must be deviceID, riID, nonce, time, domainID, certificateChain?, extensions?, signature")
	roapRuleJDReqOrder   = DefineRule("decode", "ROAP-JDREQ-ORDER", SevWarning, "roap-core §5.7", "domainID sits right after riID (OpenIPMP order); interop-tested agents (Symbian) put it after time, so move it there")
	roapRuleJDRespShape  = DefineRule("decode", "ROAP-JDRESP-SHAPE", SevError, "roap-core §5.8", "A Success joinDomainResponse carries deviceID, riID, nonce, domainInfo, certificateChain?, ocspResponse*, extensions?, signature in that order")
	roapRuleJDRespInfo   = DefineRule("decode", "ROAP-JDRESP-DOMAININFO", SevError, "roap-core §5.8", "domainInfo holds notAfter (dateTime or Infinite) and 1..n domainKey, each with encKey (Id = domain ID with generation), riID and a base64 mac")
	roapRuleJDRespKeyRI  = DefineRule("decode", "ROAP-JDRESP-KEY-RIID", SevError, "roap-core §5.8", "The riID inside every domainKey must equal the response riID, or the device rejects the domain keys")
	roapRuleLDReqShape   = DefineRule("decode", "ROAP-LDREQ-SHAPE", SevError, "roap-core §5.9; sce-token §6.8, §9 #43", "leaveDomainRequest children must be deviceID, riID, nonce, time, domainID, certificateChain?, extensions?, signature in that order")
	roapRuleLDReqNotMem  = DefineRule("decode", "ROAP-LDREQ-NOTMEMBER", SevInfo, "sce-token §6.4, §9 #45", "The NotDomainMember extension says the device held no context for this domain; update the membership view accordingly")
	roapRuleLDRespShape  = DefineRule("decode", "ROAP-LDRESP-SHAPE", SevError, "roap-core §5.10; sce-token §6.8", "A Success leaveDomainResponse carries nonce, domainID, extensions? and no signature")
	roapRuleLDRespUnsig  = DefineRule("decode", "ROAP-LDRESP-UNSIGNED", SevInfo, "sce-token §6.8, §9 #46", "leaveDomainResponse is unsigned, so only the nonce, domainID and status echo rules can vouch for it")
	roapRuleLDRespNoExt  = DefineRule("decode", "DOM-7.5.3.2-NO-EXTENSIONS", SevWarning, "seed 000 §7.5.3.2; sce-token §9 #33", "No extensions are defined for leaveDomainResponse; remove the extensions element")
	roapRuleMRSShape     = DefineRule("decode", "ROAP-MRS-SHAPE", SevError, "roap-core §5.11", "meteringReportSubmit carries deviceID, riID, nonce, time, meteringReport, certificateChain?, extensions?, signature")
	roapRuleMRSOrder     = DefineRule("decode", "ROAP-MRS-ORDER", SevWarning, "roap-core §5.11 [K]", "meteringReportSubmit children are out of the assumed order deviceID, riID, nonce, time, meteringReport, certificateChain?, extensions?, signature")
	roapRuleMRSReport    = DefineRule("decode", "ROAP-MRS-REPORT", SevError, "roap-core §5.11", "meteringReport holds encryptedMeteringReport (xenc:EncryptedData), encKey (RSA-KEM to the RI key) and a base64 mac")
	roapRuleMRRespShape  = DefineRule("decode", "ROAP-MRRESP-SHAPE", SevError, "roap-core §5.12", "A Success meteringReportResponse carries deviceID, riID, nonce, certificateChain?, ocspResponse*, extensions?, signature")
	roapRuleMRRespOrder  = DefineRule("decode", "ROAP-MRRESP-ORDER", SevWarning, "roap-core §5.12 [K]", "meteringReportResponse children are out of the assumed order deviceID, riID, nonce, certificateChain?, ocspResponse*, extensions?, signature")
	roapRuleROUpReqShape = DefineRule("decode", "ROAP-ROUPREQ-SHAPE", SevWarning, "roap-core §5.14 [K]", "roUploadRequest is expected to carry deviceID, riID, nonce, time, certificateChain?, extensions?, signature (field names assumed; the 2.1 schema is not public)")
	roapRuleROUpRspShape = DefineRule("decode", "ROAP-ROUPRESP-SHAPE", SevWarning, "roap-core §5.14 [K]", "A Success roUploadResponse is expected to carry deviceID, riID, nonce, certificateChain?, ocspResponse*, extensions?, signature (field names assumed)")
)

// roapPDUKind describes one ROAP PDU for the generic checks.
type roapPDUKind struct {
	request bool
	answers string // for responses: the request kind they answer
}

var roapPDUKinds = map[string]roapPDUKind{
	"deviceHello": {request: true}, "riHello": {answers: "deviceHello"},
	"registrationRequest": {request: true}, "registrationResponse": {answers: "registrationRequest"},
	"roRequest": {request: true}, "roResponse": {answers: "roRequest"},
	"joinDomainRequest": {request: true}, "joinDomainResponse": {answers: "joinDomainRequest"},
	"leaveDomainRequest": {request: true}, "leaveDomainResponse": {answers: "leaveDomainRequest"},
	"meteringReportSubmit": {request: true}, "meteringReportResponse": {answers: "meteringReportSubmit"},
	"roUploadRequest": {request: true}, "roUploadResponse": {answers: "roUploadRequest"},
}

// roapExtensionsFor lists, per message, the extensions roap-core §3.5 says it may carry.
var roapExtensionsFor = map[string][]string{
	"deviceHello":            {"CertificateCaching"},
	"riHello":                {"CertificateCaching", "PeerKeyIdentifier", "DeviceDetails"},
	"registrationRequest":    {"PeerKeyIdentifier", "NoOCSPResponse", "OCSPResponderKeyIdentifier", "DeviceDetails"},
	"registrationResponse":   {"DomainNameWhiteList"},
	"roRequest":              {"PeerKeyIdentifier", "NoOCSPResponse", "OCSPResponderKeyIdentifier", "TransactionIdentifier"},
	"roResponse":             {"TransactionIdentifier"},
	"joinDomainRequest":      {"PeerKeyIdentifier", "NoOCSPResponse", "OCSPResponderKeyIdentifier", "HashChainSupport"},
	"joinDomainResponse":     {"HashChainSupport"},
	"leaveDomainRequest":     {"NotDomainMember"},
	"meteringReportSubmit":   {"PeerKeyIdentifier", "NoOCSPResponse", "OCSPResponderKeyIdentifier"},
	"meteringReportResponse": {"PostResponseURL"},
	"roUploadRequest":        {"PeerKeyIdentifier", "NoOCSPResponse", "OCSPResponderKeyIdentifier"},
}

func init() {
	registerKind("deviceHello", roapSpaces, decodeDeviceHello)
	registerKind("riHello", roapSpaces, decodeRIHello)
	registerKind("registrationRequest", roapSpaces, decodeRegistrationRequest)
	registerKind("registrationResponse", roapSpaces, decodeRegistrationResponse)
	registerKind("roRequest", roapSpaces, decodeRORequest)
	registerKind("roResponse", roapSpaces, decodeROResponse)
	registerKind("joinDomainRequest", roapSpaces, decodeJoinDomainRequest)
	registerKind("joinDomainResponse", roapSpaces, decodeJoinDomainResponse)
	registerKind("leaveDomainRequest", roapSpaces, decodeLeaveDomainRequest)
	registerKind("leaveDomainResponse", roapSpaces, decodeLeaveDomainResponse)
	registerKind("meteringReportSubmit", roapSpaces, decodeMeteringReportSubmit)
	registerKind("meteringReportResponse", roapSpaces, decodeMeteringReportResponse)
	registerKind("roUploadRequest", roapSpaces, decodeROUploadRequest)
	registerKind("roUploadResponse", roapSpaces, decodeROUploadResponse)
	registerKind("protectedRO", roapSpaces, decodeStandaloneRO)
}

// ---- common parts -------------------------------------------------------------------------

// roapContentType compares the transport's content type with what the message needs. Only a
// declared content type is judged; files and embedded messages have none.
func roapContentType(d *state, m *Message, want ...string) {
	mt := mediaType(d.hint.ContentType)
	if mt == "" {
		return
	}
	for _, w := range want {
		if mt == w {
			return
		}
	}
	m.Add(roapRuleContentType.At("", "%s arrived as %q; expected %s", m.Kind, mt, strings.Join(want, " or ")))
}

// roapBeginRequest sets up a device → RI PDU: family, role, direction, content type, triggerNonce.
func roapBeginRequest(d *state, m *Message, root *Node) {
	m.Family, m.Role = FamilyROAP, RoleDevice
	roapContentType(d, m, MIMEPDU)
	if d.hint.Direction == DirResponse {
		m.Add(roapRuleDirection.At("", "%s is a device request but arrived in an HTTP response body", m.Kind))
	}
	if v, ok := root.Attr("triggerNonce"); ok {
		roapAttrNonce(m, root, "triggerNonce", v)
		m.setID("triggerNonce", v)
	}
}

// roapBeginResponse sets up an RI → device PDU and reads its status. ok reports whether the Success
// table applies: status Success, or no status at all but a body to check.
func roapBeginResponse(d *state, m *Message, root *Node) (ok bool) {
	m.Family, m.Role = FamilyROAP, RoleRI
	if m.Kind == "roResponse" {
		// A 2-pass roResponse may come as multipart/related with the DCF; a pushed one may be
		// the body of any download.
		roapContentType(d, m, MIMEPDU, "multipart/related")
	} else {
		roapContentType(d, m, MIMEPDU)
	}
	if d.hint.Direction == DirRequest {
		m.Add(roapRuleDirection.At("", "%s is an RI response but arrived in an HTTP request body", m.Kind))
	}
	if want := roapPDUKinds[m.Kind].answers; d.hint.Answers != "" && want != "" && !strings.EqualFold(d.hint.Answers, want) {
		m.Add(roapRulePair.At("", "%s answers a %s on this exchange; it answers %s", m.Kind, d.hint.Answers, want))
	}
	st := d.status(m, root, m.Kind)
	if u, has := root.Attr("errorRedirectURL"); has {
		path := "/" + root.Local + "/@errorRedirectURL"
		if !IsAnyURI(u) {
			m.Add(RuleAnyURI.At(path, "errorRedirectURL %q is not a URI", clip(u, 60)))
		}
		if st == "Success" {
			m.Add(roapRuleErrRedirect.At(path, "a Success %s carries errorRedirectURL", m.Kind))
		}
	}
	ok = st == "Success" || (st == "" && len(root.Elements()) > 0)
	if !ok {
		failEmpty(m, root, RuleFailEmpty)
	}
	return ok
}

// roapAttrNonce checks a base64 nonce held in an attribute.
func roapAttrNonce(m *Message, n *Node, name, v string) {
	path := PathOf(n) + "/@" + name
	bn, err := base64Len(v)
	switch {
	case err != nil || v == "":
		m.Add(RuleBase64.At(path, "%s is not base64: %s", name, b64Err(v, err)))
	case bn < 14:
		m.Add(RuleNonceLen.At(path, "%s is %d octets; at least 14 expected", name, bn))
	}
}

// roapRequireAttr reports a missing or empty mandatory attribute under rule r and returns its value.
func roapRequireAttr(m *Message, n *Node, name string, r Rule) string {
	v, ok := n.Attr(name)
	if !ok || strings.TrimSpace(v) == "" {
		m.Add(r.At(PathOf(n)+"/@"+name, "<%s> has no %s attribute", n.Local, name))
	}
	return v
}

// roapCheck runs a presence table without the "namespace-qualified child" notes for the
// children the schema declares as global (qualified) elements, such as roap:protectedRO.
func roapCheck(d *state, m *Message, s Seq, parent *Node, specs []ElemSpec, qualified ...string) Found {
	s.qualified = qualified
	return s.Check(d, m, parent, specs)
}

// roapDropFindings removes, among the findings added since index from, those drop selects.
func roapDropFindings(m *Message, from int, drop func(Finding) bool) {
	kept := m.Findings[:from]
	for _, x := range m.Findings[from:] {
		if !drop(x) {
			kept = append(kept, x)
		}
	}
	m.Findings = kept
}

// roapExtPlacement notes known extensions sent in a message that does not list them.
func roapExtPlacement(m *Message, ext *Node) {
	allowed, ok := roapExtensionsFor[m.Kind]
	if ext == nil || !ok {
		return
	}
	for e := range ext.EachNamed("extension") {
		t, _ := xsiTypeLocal(e)
		if t == "" || !knownExtensions[t] {
			continue
		}
		found := false
		for _, a := range allowed {
			if strings.EqualFold(a, t) || (strings.EqualFold(a, "NoOCSPResponse") && t == "NoOcspResponse") ||
				(strings.EqualFold(a, "OCSPResponderKeyIdentifier") && t == "OcspResponderKeyIdentifier") {
				found = true
			}
		}
		if !found {
			m.Add(roapRuleExtPlace.At(PathOf(e), "extension %s is not one the reference lists for %s", t, m.Kind))
		}
	}
}

// roapDomainIDForm checks the form of a ROAP Domain ID (base + 3-digit generation, ≤ 20 chars).
func roapDomainIDForm(m *Message, n *Node) {
	if n == nil {
		return
	}
	v := n.TextContent()
	if v == "" {
		return // reported as empty by the presence engine
	}
	if _, ok := roapDomainGen(v); !ok {
		m.Add(roapRuleDomainIDForm.At(PathOf(n), "domain ID %q does not end in a 3-digit generation number", clip(v, 40)))
	} else if len(v) > 20 {
		m.Add(roapRuleDomainIDForm.At(PathOf(n), "domain ID %q is %d characters; at most 20 are expected", clip(v, 40), len(v)))
	}
}

// roapDomainGen returns the generation number carried in the last three characters of a ROAP
// Domain ID ("Domain-XYZ-001" → 1).
func roapDomainGen(id string) (int, bool) {
	if len(id) < 4 {
		return 0, false
	}
	g := 0
	for _, c := range id[len(id)-3:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		g = g*10 + int(c-'0')
	}
	return g, true
}

// roapLeafKeyID returns the base64 SHA-1 of the leaf SPKI of the chain decoded from node n (the
// sender's key identifier), or "".
func roapLeafKeyID(m *Message, n *Node) string {
	if n == nil {
		return ""
	}
	path := PathOf(n)
	for _, c := range m.Chains {
		if c.Path == path && len(c.Certs) > 0 {
			h := sha1.Sum(c.Certs[0].RawSubjectPublicKeyInfo)
			return base64.StdEncoding.EncodeToString(h[:])
		}
	}
	return ""
}

// roapAlgorithm returns the Algorithm attribute of n (ds/xenc spelling, or the lower-case ROAP one).
func roapAlgorithm(n *Node) string {
	if v, ok := n.Attr("Algorithm"); ok {
		return v
	}
	v, _ := n.Attr("algorithm")
	return v
}

// roapSignedInfo checks an XML-DSig SignedInfo (RO mac, signed trigger): canonicalization,
// signature method, one Reference to wantURI with a SHA-1 DigestValue. It returns the digest.
func roapSignedInfo(m *Message, si *Node, r Rule, wantURI string) string {
	// The path is built only when something is reported.
	path := func() string { return PathOf(si) }
	if cm := si.Child("CanonicalizationMethod"); cm == nil {
		m.Add(r.At(path()+"/CanonicalizationMethod", "SignedInfo has no CanonicalizationMethod"))
	} else if a := roapAlgorithm(cm); a != AlgC14N {
		m.Add(r.AtSev(SevWarning, PathOf(cm), "canonicalization %q is not exclusive c14n (%s)", a, AlgC14N))
	}
	if sm := si.Child("SignatureMethod"); sm == nil {
		m.Add(r.At(path()+"/SignatureMethod", "SignedInfo has no SignatureMethod"))
	} else if a := roapAlgorithm(sm); a != AlgHMAC1 {
		m.Add(r.AtSev(SevWarning, PathOf(sm), "signature method %q is not HMAC-SHA1 (%s)", a, AlgHMAC1))
	}
	refs := si.ChildrenNamed("Reference")
	if len(refs) == 0 {
		m.Add(r.At(path()+"/Reference", "SignedInfo has no Reference"))
		return ""
	}
	ref := refs[0]
	if uri, _ := ref.Attr("URI"); wantURI != "" && uri != wantURI {
		m.Add(r.At(PathOf(ref)+"/@URI", "Reference URI is %q; it must point at %q", uri, wantURI))
	}
	if dm := ref.Child("DigestMethod"); dm != nil {
		if a := roapAlgorithm(dm); a != AlgSHA1 {
			m.Add(r.AtSev(SevWarning, PathOf(dm), "digest method %q is not SHA-1", a))
		}
	}
	dv := ref.Child("DigestValue")
	if dv == nil {
		m.Add(r.At(PathOf(ref)+"/DigestValue", "Reference has no DigestValue"))
		return ""
	}
	bn, err := base64Len(dv.TextContent())
	switch {
	case err != nil || dv.TextContent() == "":
		m.Add(RuleBase64.At(PathOf(dv), "DigestValue is not base64: %s", b64Err(dv.TextContent(), err)))
	case bn != sha1.Size:
		m.Add(r.At(PathOf(dv), "DigestValue is %d bytes; SHA-1 gives 20", bn))
	}
	return dv.TextContent()
}

// roapCipherValue checks encKey/CipherData/CipherValue and returns its decoded length (-1 when
// absent or undecodable).
func roapCipherValue(m *Message, enc *Node, r Rule) int {
	cv := enc.Find("CipherData/CipherValue")
	if cv == nil {
		m.Add(r.At(PathOf(enc)+"/CipherData/CipherValue", "<%s> has no CipherData/CipherValue", enc.Local))
		return -1
	}
	bn, err := base64Len(cv.TextContent())
	if err != nil || cv.TextContent() == "" {
		m.Add(RuleBase64.At(PathOf(cv), "CipherValue is not base64: %s", b64Err(cv.TextContent(), err)))
		return -1
	}
	return bn
}

// ---- device and RI hello --------------------------------------------------------------------

func decodeDeviceHello(d *state, m *Message, root *Node) {
	roapBeginRequest(d, m, root)
	f := roapCheck(d, m, Seq{Presence: roapRuleDHShape, Order: roapRuleDHShape, Where: "deviceHello"}, root, []ElemSpec{
		M("version", VString), R("deviceID", 1, VIdentifier), R("supportedAlgorithm", 0, VAnyURI), O("extensions", VExtensions),
	})
	if v := f.First("version"); v != nil && v.TextContent() != "" {
		roapVersion(m, v, roapRuleDHVersion)
	}
	// Several deviceIDs are one per device key (multi-PKI); deviceID is the first for
	// correlation, deviceIDs all of them.
	setIDFrom(m, "deviceID", f.First("deviceID"))
	setIDsFrom(m, "deviceIDs", f.All("deviceID"))
	roapExtPlacement(m, f.First("extensions"))
}

// roapVersion checks a ROAP Version value (major.minor, at most 10 characters).
func roapVersion(m *Message, n *Node, r Rule) {
	v := n.TextContent()
	maj, min, ok := strings.Cut(v, ".")
	if !ok || !IsInteger(maj) || !IsInteger(min) || strings.HasPrefix(maj, "-") || strings.HasPrefix(min, "-") || len(v) > 10 {
		m.Add(r.At(PathOf(n), "version %q is not of the form major.minor", clip(v, 20)))
		return
	}
	if v != "1.0" && v != "1.1" {
		m.Add(r.AtSev(SevInfo, PathOf(n), "version %q is neither 1.0 (DRM 2.0) nor 1.1 (DRM 2.1)", v))
	}
}

func decodeRIHello(d *state, m *Message, root *Node) {
	ok := roapBeginResponse(d, m, root)
	sid, hasSID := root.Attr("sessionId")
	if ok {
		roapRequireAttr(m, root, "sessionId", roapRuleRIHelloShape)
		f := roapCheck(d, m, Seq{Presence: roapRuleRIHelloShape, Order: roapRuleRIHelloShape, Where: "Success riHello"}, root, []ElemSpec{
			M("selectedVersion", VString), M("riID", VIdentifier), R("selectedAlgorithm", 0, VAnyURI), M("riNonce", VNonce),
			O("trustedAuthorities", VKeyIDs), O("serverInfo", VBase64), O("extensions", VExtensions),
		})
		if v := f.First("selectedVersion"); v != nil && v.TextContent() != "" {
			roapVersion(m, v, roapRuleDHVersion)
		}
		setIDFrom(m, "riID", f.First("riID"))
		m.setID("riNonce", f.Text("riNonce"))
		roapExtPlacement(m, f.First("extensions"))
	}
	if hasSID {
		m.setID("sessionId", sid)
	}
}

// ---- registration ---------------------------------------------------------------------------

func decodeRegistrationRequest(d *state, m *Message, root *Node) {
	roapBeginRequest(d, m, root)
	m.setID("sessionId", roapRequireAttr(m, root, "sessionId", roapRuleRegReqShape))
	f := roapCheck(d, m, Seq{Presence: roapRuleRegReqShape, Order: roapRuleRegReqShape, Where: "registrationRequest"}, root, []ElemSpec{
		M("nonce", VNonce), M("time", VDateTime), O("certificateChain", VChain), O("trustedAuthorities", VKeyIDs),
		O("serverInfo", VBase64), O("extensions", VExtensions), M("signature", VBase64),
	})
	m.setID("nonce", f.Text("nonce"))
	// The message names no deviceID; the key identifier of the chain's leaf is, by definition,
	// the device ID the deviceHello announced.
	m.setID("deviceID", roapLeafKeyID(m, f.First("certificateChain")))
	roapExtPlacement(m, f.First("extensions"))
	signatureSpan(m, root)
}

func decodeRegistrationResponse(d *state, m *Message, root *Node) {
	ok := roapBeginResponse(d, m, root)
	if sid, has := root.Attr("sessionId"); has {
		m.setID("sessionId", sid)
	}
	if !ok {
		return
	}
	roapRequireAttr(m, root, "sessionId", roapRuleRegRespShape)
	f := roapCheck(d, m, Seq{Presence: roapRuleRegRespShape, Order: roapRuleRegRespShape, Where: "Success registrationResponse"}, root, []ElemSpec{
		M("riURL", VAnyURI), O("certificateChain", VChain), R("ocspResponse", 0, VOCSP), O("extensions", VExtensions), M("signature", VBase64),
	})
	m.setID("riURL", f.Text("riURL"))
	m.setID("riID", roapLeafKeyID(m, f.First("certificateChain")))
	roapExtPlacement(m, f.First("extensions"))
	signatureSpan(m, root)
}

// ---- RO acquisition -------------------------------------------------------------------------

func decodeRORequest(d *state, m *Message, root *Node) {
	roapBeginRequest(d, m, root)
	f := roapCheck(d, m, Seq{Presence: roapRuleROReqShape, Order: roapRuleROReqShape, Where: "roRequest"}, root, []ElemSpec{
		M("deviceID", VIdentifier), O("domainID", VDomainID), M("riID", VIdentifier), M("nonce", VNonce), M("time", VDateTime),
		M("roInfo", VAny), O("certificateChain", VChain), O("extensions", VExtensions), M("signature", VBase64),
	})
	setIDFrom(m, "deviceID", f.First("deviceID"))
	setIDFrom(m, "riID", f.First("riID"))
	m.setID("nonce", f.Text("nonce"))
	m.setID("domainID", f.Text("domainID"))
	roapDomainIDForm(m, f.First("domainID"))
	if ri := f.First("roInfo"); ri != nil {
		m.setID("roIDs", strings.Join(roapROInfo(m, ri), ","))
	}
	roapExtPlacement(m, f.First("extensions"))
	signatureSpan(m, root)
}

// roapROInfo checks roInfo: a sequence of roID, each optionally followed by dcfHash.
func roapROInfo(m *Message, ri *Node) []string {
	var ids []string
	prev := ""
	for _, c := range ri.Elements() {
		switch c.Local {
		case "roID":
			v := c.TextContent()
			if !IsNCName(v) {
				m.Add(RuleNCName.At(PathOf(c), "roID %q is not an NCName (xs:ID)", clip(v, 40)))
			}
			if v != "" {
				ids = append(ids, v)
			}
		case "dcfHash":
			if prev != "roID" {
				m.Add(roapRuleROReqShape.At(PathOf(c), "dcfHash must follow the roID it belongs to"))
			}
		default:
			m.Add(roapRuleROReqShape.At(PathOf(c), "unexpected element <%s> in roInfo; only roID and dcfHash are defined", c.QName()))
		}
		prev = c.Local
	}
	if ri.Child("roID") == nil {
		m.Add(roapRuleROReqShape.At(PathOf(ri)+"/roID", "roInfo names no roID"))
	}
	return ids
}

// roResponseVariant tells a 1-pass (pushed) from a 2-pass roResponse. The transport hint wins;
// without one, a nonce (the echo of the Device Nonce) means 2-pass. A failure status only makes
// sense as an answer, so it is 2-pass unless the body was pushed.
// roResponseWhere names the table of each variant for findings, without a concatenation per
// message.
var roResponseWhere = map[string]string{"1-pass": "1-pass Success roResponse", "2-pass": "2-pass Success roResponse"}

func roResponseVariant(d *state, root *Node, success bool) string {
	switch {
	case d.hint.Pushed:
		return "1-pass"
	case strings.EqualFold(d.hint.Answers, "roRequest"):
		return "2-pass"
	case !success:
		return "2-pass"
	case root.ChildFold("nonce") != nil:
		return "2-pass"
	}
	return "1-pass"
}

func decodeROResponse(d *state, m *Message, root *Node) {
	ok := roapBeginResponse(d, m, root)
	m.Variant = roResponseVariant(d, root, ok)
	if !ok {
		if m.Variant == "1-pass" && m.Status != "" {
			m.Add(roapRuleRORespShape.At("/"+root.Local+"/@status", "a 1-pass roResponse is pushed with status Success, not %s", m.Status))
		}
		return
	}
	nonce := M("nonce", VNonce)
	if m.Variant == "1-pass" {
		nonce = Absent("nonce")
	}
	f := roapCheck(d, m, Seq{Presence: roapRuleRORespShape, Order: roapRuleRORespShape, Where: roResponseWhere[m.Variant]}, root, []ElemSpec{
		M("deviceID", VIdentifier), M("riID", VIdentifier), nonce, R("protectedRO", 1, VAny), O("certificateChain", VChain),
		R("ocspResponse", 0, VOCSP), O("extensions", VExtensions), M("signature", VBase64),
	}, "protectedRO")
	setIDFrom(m, "deviceID", f.First("deviceID"))
	setIDFrom(m, "riID", f.First("riID"))
	m.setID("nonce", f.Text("nonce"))
	if m.Variant == "1-pass" && len(f.All("ocspResponse")) == 0 {
		m.Add(roapRuleRORespShape.AtSev(SevInfo, "/"+root.Local+"/ocspResponse", "1-pass roResponse without ocspResponse: the device has no nonce-bound OCSP and relies on stored responses (OpenIPMP requires one)"))
	}
	var roIDs []string
	riID := IdentifierHash(f.First("riID"))
	for _, pro := range f.All("protectedRO") {
		if id := d.roapProtectedRO(m, pro, riID); id != "" {
			roIDs = append(roIDs, id)
		}
	}
	m.setID("roIDs", strings.Join(roIDs, ","))
	roapExtPlacement(m, f.First("extensions"))
	// signatureSpan takes the root's own last <signature>, never the one inside a Domain RO.
	signatureSpan(m, root)
}

// decodeStandaloneRO decodes an application/vnd.oma.drm.ro+xml object: a bare roap:protectedRO.
func decodeStandaloneRO(d *state, m *Message, root *Node) {
	m.Family, m.Role = FamilyROAP, RoleRI
	roapContentType(d, m, MIMERO)
	if id := d.roapProtectedRO(m, root, ""); id != "" {
		m.setID("roIDs", id)
	}
	setIDFrom(m, "riID", root.Find("ro/riID"))
}

// roapProtectedRO checks one roap:protectedRO (roap-core §5.13) and returns the RO id. respRiID is
// the riID of the carrying roResponse ("" when stand-alone).
func (d *state) roapProtectedRO(m *Message, pro *Node, respRiID string) string {
	f := roapCheck(d, m, Seq{Presence: roapRuleROShape, Order: roapRuleROShape, Where: "protectedRO"}, pro, []ElemSpec{
		M("ro", VAny), M("mac", VAny),
	}, "ro")
	ro := f.First("ro")
	if ro == nil {
		return ""
	}
	id := roapRequireAttr(m, ro, "id", roapRuleROShape)
	if id != "" && !IsNCName(id) {
		m.Add(RuleNCName.At(PathOf(ro)+"/@id", "RO id %q is not an NCName (xs:ID)", clip(id, 40)))
	}
	roapRequireAttr(m, ro, "version", roapRuleROShape)
	domainRO := false
	for _, b := range []string{"stateful", "domainRO"} {
		if v, ok := ro.Attr(b); ok {
			switch v {
			case "true", "1":
				if b == "domainRO" {
					domainRO = true
				}
			case "false", "0":
			default:
				m.Add(RuleBoolean.At(PathOf(ro)+"/@"+b, "%s=%q is not a boolean", b, v))
			}
		}
	}
	if u, ok := ro.Attr("riURL"); ok && !IsAnyURI(u) {
		m.Add(RuleAnyURI.At(PathOf(ro)+"/@riURL", "riURL %q is not a URI", clip(u, 60)))
	}
	rf := roapCheck(d, m, Seq{Presence: roapRuleROShape, Order: roapRuleROShape, Where: "roap:ro"}, ro, []ElemSpec{
		M("riID", VIdentifier), M("rights", VAny), O("signature", VAny), O("timeStamp", VDateTime), M("encKey", VAny),
	}, "rights")
	if respRiID != "" {
		if h := IdentifierHash(rf.First("riID")); h != "" && h != respRiID {
			m.Add(roapRuleRORiID.At(PathOf(rf.First("riID")), "RO %s names RI %s; the roResponse comes from %s", id, h, respRiID))
		}
	}
	if domainRO && rf.First("signature") == nil {
		m.Add(roapRuleRODomainSig.At(PathOf(ro)+"/signature", "Domain RO %s carries no RI signature", id))
	}
	encKeyID := ""
	if enc := rf.First("encKey"); enc != nil {
		encKeyID, _ = enc.Attr("Id")
		d.roapEncKey(m, enc, domainRO)
	}
	if mac := f.First("mac"); mac != nil {
		roapROMAC(m, mac, id, encKeyID)
	}
	return id
}

// roapEncKey checks the key transport of an RO against its kind (device or Domain RO).
func (d *state) roapEncKey(m *Message, enc *Node, domainRO bool) {
	// The path is built only when something is reported.
	path := func() string { return PathOf(enc) }
	em := enc.Child("EncryptionMethod")
	if em == nil {
		m.Add(roapRuleROShape.At(path()+"/EncryptionMethod", "encKey has no EncryptionMethod"))
	}
	alg := roapAlgorithm(em)
	domainKeyInfo := enc.Find("KeyInfo/domainID")
	n := roapCipherValue(m, enc, roapRuleROShape)
	switch {
	case em == nil:
	case domainRO:
		if alg != AlgKWAES {
			m.Add(roapRuleROEncKey.At(PathOf(em), "Domain RO key transport is %q; Domain ROs use kw-aes128 under the Domain Key", alg))
		}
		if domainKeyInfo == nil {
			m.Add(roapRuleROEncKey.At(path()+"/KeyInfo", "Domain RO encKey KeyInfo does not name the domain (roap:domainID)"))
		} else {
			roapDomainIDForm(m, domainKeyInfo)
			m.setID("domainID", domainKeyInfo.TextContent())
		}
		if n >= 0 && n != 40 {
			m.Add(roapRuleROEncKey.At(path()+"/CipherData/CipherValue", "wrapped K_MAC‖K_REK is %d bytes; AES-WRAP of 32 bytes gives 40", n))
		}
	default:
		if alg != AlgKEM && !strings.HasPrefix(alg, "http://www.cm-la.com/tech/cmlaip/cmlaip#") {
			m.Add(roapRuleROEncKey.At(PathOf(em), "device RO key transport is %q; expected RSA-KEM (%s) or a CMLA method", alg, AlgKEM))
		}
		if domainKeyInfo != nil {
			m.Add(roapRuleROEncKey.At(PathOf(domainKeyInfo), "a device RO (no domainRO=\"true\") names a domain in its encKey"))
		}
		if n >= 0 && n <= 40 {
			m.Add(roapRuleROEncKey.At(path()+"/CipherData/CipherValue", "RSA-KEM ciphertext is %d bytes; it must hold C1 (modulus size) plus the 40-byte C2", n))
		}
	}
}

// roapROMAC checks the protectedRO mac: SignedInfo referencing the RO, SignatureValue, and the
// optional RetrievalMethod pointing at the encKey.
func roapROMAC(m *Message, mac *Node, roID, encKeyID string) {
	// The path is built only when something is reported.
	path := func() string { return PathOf(mac) }
	si := mac.Child("SignedInfo")
	if si == nil {
		m.Add(roapRuleROMAC.At(path()+"/SignedInfo", "mac has no ds:SignedInfo"))
	} else {
		want := ""
		if roID != "" {
			want = "#" + roID
		}
		roapSignedInfo(m, si, roapRuleROMAC, want)
	}
	sv := mac.Child("SignatureValue")
	if sv == nil {
		m.Add(roapRuleROMAC.At(path()+"/SignatureValue", "mac has no ds:SignatureValue"))
	} else if n, err := base64DecodedLen(sv.TextContent()); err != nil || sv.TextContent() == "" {
		m.Add(RuleBase64.At(PathOf(sv), "SignatureValue is not base64: %s", b64Err(sv.TextContent(), err)))
	} else if n != sha1.Size {
		m.Add(roapRuleROMAC.AtSev(SevWarning, PathOf(sv), "SignatureValue is %d bytes; HMAC-SHA1 gives 20", n))
	}
	if rm := mac.Find("KeyInfo/RetrievalMethod"); rm != nil && encKeyID != "" {
		if u, _ := rm.Attr("URI"); u != "#"+encKeyID {
			m.Add(roapRuleROMAC.AtSev(SevWarning, PathOf(rm)+"/@URI", "RetrievalMethod URI %q does not point at the encKey (#%s)", u, encKeyID))
		}
	}
}

// ---- domains --------------------------------------------------------------------------------

// openIPMPJoinOrder reports whether a joinDomainRequest has domainID right after riID, before
// nonce and time (the OpenIPMP order).
func openIPMPJoinOrder(root *Node) bool {
	pos := map[string]int{}
	for i, c := range root.Elements() {
		k := strings.ToLower(c.Local)
		if _, seen := pos[k]; !seen {
			pos[k] = i
		}
	}
	dom, okD := pos["domainid"]
	ri, okR := pos["riid"]
	if !okD || !okR || dom < ri {
		return false
	}
	for _, later := range []string{"nonce", "time"} {
		if p, ok := pos[later]; ok && p < dom {
			return false
		}
	}
	return true
}

func decodeJoinDomainRequest(d *state, m *Message, root *Node) {
	roapBeginRequest(d, m, root)
	specs := []ElemSpec{
		M("deviceID", VIdentifier), M("riID", VIdentifier), M("nonce", VNonce), M("time", VDateTime), M("domainID", VDomainID),
		O("certificateChain", VChain), O("extensions", VExtensions), M("signature", VBase64),
	}
	if openIPMPJoinOrder(root) {
		// Tolerated: both orders exist in the field (roap-core §5.7); report, check the rest.
		specs = append([]ElemSpec{specs[0], specs[1], specs[4], specs[2], specs[3]}, specs[5:]...)
		m.Add(roapRuleJDReqOrder.At(PathOf(root.ChildFold("domainID")), "domainID comes right after riID (OpenIPMP order); the reference order puts it after time"))
	}
	f := roapCheck(d, m, Seq{Presence: roapRuleJDReqShape, Order: roapRuleJDReqShape, Where: "joinDomainRequest"}, root, specs)
	setIDFrom(m, "deviceID", f.First("deviceID"))
	setIDFrom(m, "riID", f.First("riID"))
	m.setID("nonce", f.Text("nonce"))
	m.setID("domainID", f.Text("domainID"))
	roapDomainIDForm(m, f.First("domainID"))
	roapExtPlacement(m, f.First("extensions"))
	signatureSpan(m, root)
}

func decodeJoinDomainResponse(d *state, m *Message, root *Node) {
	if !roapBeginResponse(d, m, root) {
		return
	}
	f := roapCheck(d, m, Seq{Presence: roapRuleJDRespShape, Order: roapRuleJDRespShape, Where: "Success joinDomainResponse"}, root, []ElemSpec{
		M("deviceID", VIdentifier), M("riID", VIdentifier), M("nonce", VNonce), M("domainInfo", VAny), O("certificateChain", VChain),
		R("ocspResponse", 0, VOCSP), O("extensions", VExtensions), M("signature", VBase64),
	})
	setIDFrom(m, "deviceID", f.First("deviceID"))
	setIDFrom(m, "riID", f.First("riID"))
	m.setID("nonce", f.Text("nonce"))
	if di := f.First("domainInfo"); di != nil {
		d.roapDomainInfo(m, di, IdentifierHash(f.First("riID")))
	}
	roapExtPlacement(m, f.First("extensions"))
	signatureSpan(m, root)
}

// roapDomainInfo checks a joinDomainResponse domainInfo and records the domain IDs of its keys:
// domainID is the newest generation, domainIDs all of them.
func (d *state) roapDomainInfo(m *Message, di *Node, respRiID string) {
	expiry := "notAfter"
	if di.Child("notAfter") == nil && di.Child("time") != nil {
		expiry = "time"
		m.Add(roapRuleJDRespInfo.AtSev(SevWarning, PathOf(di.Child("time")), "membership expiry is in <time> (OpenIPMP); the reference element is <notAfter>"))
	}
	f := roapCheck(d, m, Seq{Presence: roapRuleJDRespInfo, Order: roapRuleJDRespInfo, Where: "domainInfo"}, di, []ElemSpec{
		M(expiry, VAny), R("domainKey", 1, VAny),
	}, "domainKey")
	if na := f.First(expiry); na != nil {
		if v := na.TextContent(); v != "Infinite" {
			d.checkValue(m, na, ElemSpec{Name: expiry, Type: VDateTime})
		}
	}
	var ids []string
	best, bestGen := "", -1
	for _, dk := range f.All("domainKey") {
		kf := roapCheck(d, m, Seq{Presence: roapRuleJDRespInfo, Order: roapRuleJDRespInfo, Where: "domainKey"}, dk, []ElemSpec{
			M("encKey", VAny), M("riID", VIdentifier), M("mac", VBase64),
		})
		if ri := kf.First("riID"); ri != nil && respRiID != "" {
			if h := IdentifierHash(ri); h != "" && h != respRiID {
				m.Add(roapRuleJDRespKeyRI.At(PathOf(ri), "domainKey names RI %s; the response riID is %s", h, respRiID))
			}
		}
		enc := kf.First("encKey")
		if enc == nil {
			continue
		}
		id := roapRequireAttr(m, enc, "Id", roapRuleJDRespInfo)
		if id != "" {
			ids = append(ids, id)
			if g, ok := roapDomainGen(id); ok && g > bestGen {
				best, bestGen = id, g
			} else if !ok {
				m.Add(roapRuleDomainIDForm.At(PathOf(enc)+"/@Id", "domain key Id %q does not end in a 3-digit generation number", clip(id, 40)))
			}
		}
		if em := enc.Child("EncryptionMethod"); em == nil {
			m.Add(roapRuleJDRespInfo.At(PathOf(enc)+"/EncryptionMethod", "encKey has no EncryptionMethod"))
		} else if a := roapAlgorithm(em); a != AlgKEM && !strings.HasPrefix(a, "http://www.cm-la.com/tech/cmlaip/cmlaip#") {
			m.Add(roapRuleJDRespInfo.AtSev(SevWarning, PathOf(em), "domain key transport %q is neither RSA-KEM nor a CMLA method", a))
		}
		roapCipherValue(m, enc, roapRuleJDRespInfo)
	}
	if best == "" && len(ids) > 0 {
		best = ids[len(ids)-1]
	}
	m.setID("domainID", best)
	if len(ids) > 1 {
		m.setID("domainIDs", strings.Join(ids, ","))
	}
}

func decodeLeaveDomainRequest(d *state, m *Message, root *Node) {
	roapBeginRequest(d, m, root)
	f := roapCheck(d, m, Seq{Presence: roapRuleLDReqShape, Order: roapRuleLDReqShape, Where: "leaveDomainRequest"}, root, []ElemSpec{
		M("deviceID", VIdentifier), M("riID", VIdentifier), M("nonce", VNonce), M("time", VDateTime),
		M("domainID", VDomainID), O("certificateChain", VChain), O("extensions", VExtensions), M("signature", VBase64),
	})
	setIDFrom(m, "deviceID", f.First("deviceID"))
	setIDFrom(m, "riID", f.First("riID"))
	m.setID("nonce", f.Text("nonce"))
	m.setID("domainID", f.Text("domainID"))
	roapDomainIDForm(m, f.First("domainID"))
	if ext := f.First("extensions"); ext != nil {
		roapExtPlacement(m, ext)
		for e := range ext.EachNamed("extension") {
			if t, _ := xsiTypeLocal(e); t == "NotDomainMember" {
				m.Add(roapRuleLDReqNotMem.At(PathOf(e), "the device says it is not a member of %s (it held no domain context)", clip(f.Text("domainID"), 40)))
			}
		}
	}
	signatureSpan(m, root)
}

func decodeLeaveDomainResponse(d *state, m *Message, root *Node) {
	ok := roapBeginResponse(d, m, root)
	m.Add(roapRuleLDRespUnsig.At("/"+root.Local, "leaveDomainResponse is not signed; only the echo of nonce, domainID and status can vouch for it"))
	if !ok {
		return
	}
	f := roapCheck(d, m, Seq{Presence: roapRuleLDRespShape, Order: roapRuleLDRespShape, Where: "Success leaveDomainResponse"}, root, []ElemSpec{
		M("nonce", VNonce), M("domainID", VDomainID), O("extensions", VExtensions),
	})
	m.setID("nonce", f.Text("nonce"))
	m.setID("domainID", f.Text("domainID"))
	roapDomainIDForm(m, f.First("domainID"))
	if ext := f.First("extensions"); ext != nil {
		m.Add(roapRuleLDRespNoExt.At(PathOf(ext), "leaveDomainResponse carries extensions (%s); none are defined for it", strings.Join(roapNonEmpty(Extensions(ext), "untyped"), ", ")))
	}
}

func roapNonEmpty(ss []string, def string) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if s == "" {
			s = def
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		out = append(out, "empty")
	}
	return out
}

// ---- metering and RO upload (DRM 2.1) -------------------------------------------------------

func decodeMeteringReportSubmit(d *state, m *Message, root *Node) {
	roapBeginRequest(d, m, root)
	f := roapCheck(d, m, Seq{Presence: roapRuleMRSShape, Order: roapRuleMRSOrder, Where: "meteringReportSubmit"}, root, []ElemSpec{
		M("deviceID", VIdentifier), M("riID", VIdentifier), M("nonce", VNonce), M("time", VDateTime), M("meteringReport", VAny),
		O("certificateChain", VChain), O("extensions", VExtensions), M("signature", VBase64),
	})
	setIDFrom(m, "deviceID", f.First("deviceID"))
	setIDFrom(m, "riID", f.First("riID"))
	m.setID("nonce", f.Text("nonce"))
	if mr := f.First("meteringReport"); mr != nil {
		rf := roapCheck(d, m, Seq{Presence: roapRuleMRSReport, Order: roapRuleMRSReport, Where: "meteringReport"}, mr, []ElemSpec{
			M("encryptedMeteringReport", VAny), M("encKey", VAny), M("mac", VBase64),
		})
		if emr := rf.First("encryptedMeteringReport"); emr != nil {
			if ed := emr.Child("EncryptedData"); ed == nil {
				m.Add(roapRuleMRSReport.At(PathOf(emr)+"/EncryptedData", "encryptedMeteringReport holds no xenc:EncryptedData"))
			} else {
				roapCipherValue(m, ed, roapRuleMRSReport)
			}
		}
		if enc := rf.First("encKey"); enc != nil {
			if em := enc.Child("EncryptionMethod"); em == nil {
				m.Add(roapRuleMRSReport.At(PathOf(enc)+"/EncryptionMethod", "encKey has no EncryptionMethod"))
			} else if a := roapAlgorithm(em); a != AlgKEM && !strings.HasPrefix(a, "http://www.cm-la.com/tech/cmlaip/cmlaip#") {
				m.Add(roapRuleMRSReport.AtSev(SevWarning, PathOf(em), "metering key transport %q is neither RSA-KEM nor a CMLA method", a))
			}
			roapCipherValue(m, enc, roapRuleMRSReport)
		}
	}
	roapExtPlacement(m, f.First("extensions"))
	signatureSpan(m, root)
}

func decodeMeteringReportResponse(d *state, m *Message, root *Node) {
	if !roapBeginResponse(d, m, root) {
		return
	}
	f := roapCheck(d, m, Seq{Presence: roapRuleMRRespShape, Order: roapRuleMRRespOrder, Where: "Success meteringReportResponse"}, root, []ElemSpec{
		M("deviceID", VIdentifier), M("riID", VIdentifier), M("nonce", VNonce), O("certificateChain", VChain),
		R("ocspResponse", 0, VOCSP), O("extensions", VExtensions), M("signature", VBase64),
	})
	setIDFrom(m, "deviceID", f.First("deviceID"))
	setIDFrom(m, "riID", f.First("riID"))
	m.setID("nonce", f.Text("nonce"))
	if ext := f.First("extensions"); ext != nil {
		// The post-response URL extension's type name is not confirmed; Symbian matches the
		// path extensions/extension/prURL whatever the type.
		for e := range ext.EachNamed("extension") {
			if p := e.Child("prURL"); p != nil {
				d.checkValue(m, p, ElemSpec{Name: "prURL", Type: VAnyURI})
				m.setID("prURL", p.TextContent())
			}
		}
	}
	signatureSpan(m, root)
}

func decodeROUploadRequest(d *state, m *Message, root *Node) {
	roapBeginRequest(d, m, root)
	f := roapCheck(d, m, Seq{Presence: roapRuleROUpReqShape, Order: roapRuleROUpReqShape, Where: "roUploadRequest", Open: true}, root, []ElemSpec{
		M("deviceID", VIdentifier), M("riID", VIdentifier), M("nonce", VNonce), M("time", VDateTime),
		O("certificateChain", VChain), O("extensions", VExtensions), M("signature", VBase64),
	})
	setIDFrom(m, "deviceID", f.First("deviceID"))
	setIDFrom(m, "riID", f.First("riID"))
	m.setID("nonce", f.Text("nonce"))
	roapExtPlacement(m, f.First("extensions"))
	signatureSpan(m, root)
}

func decodeROUploadResponse(d *state, m *Message, root *Node) {
	if !roapBeginResponse(d, m, root) {
		return
	}
	f := roapCheck(d, m, Seq{Presence: roapRuleROUpRspShape, Order: roapRuleROUpRspShape, Where: "Success roUploadResponse", Open: true}, root, []ElemSpec{
		M("deviceID", VIdentifier), M("riID", VIdentifier), M("nonce", VNonce), O("certificateChain", VChain),
		R("ocspResponse", 0, VOCSP), O("extensions", VExtensions), M("signature", VBase64),
	})
	setIDFrom(m, "deviceID", f.First("deviceID"))
	setIDFrom(m, "riID", f.First("riID"))
	m.setID("nonce", f.Text("nonce"))
	signatureSpan(m, root)
}
