package decode

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SCE GEN / DOM / RDP messages (sce-token §5, §6): the RI↔DEA leg of the Proxy Leave User Domain
// flow, decoded for the fields seed 000 fixes, and any other rdp…Request / rdp…Response decoded
// generically as gen:Request / gen:Response. Only checks decidable from one message live here;
// the MAC (GEN-MAC-SCOPE) and every cross-message rule belong to verify/.

var (
	ruleGenStatusAttr = DefineRule("decode", "GEN-STATUS-ATTR", SevError, "seed 000 §7.5.2, Table 17; sce-token §5.1, §9 #3", "The status of a gen:Response is a mandatory attribute")
	ruleGenPlacement  = DefineRule("decode", "GEN-FIELD-PLACEMENT", SevInfo, "sce-token §5.1, §9 #4", "A gen field was seen as an attribute where ROAP analogy puts an element (or the reverse), or in both forms; placement is INFERRED, so this is only noted")
	ruleGenShape      = DefineRule("decode", "GEN-SHAPE", SevWarning, "sce-token §5.1, §11", "An RDP message known only generically lacks a gen:Request / gen:Response field (the SCE-GEN schema is not public, so never more than a warning)")

	ruleLUReqRoot      = DefineRule("decode", "DOM-7.5.2-ROOT", SevError, "seed 000 §7.5.2; sce-token §9 #7", "The Proxy Leave User Domain request is an <rdpProxyLeaveUserDomainRequest> of type gen:Request (namespace dom is INFERRED)")
	ruleLUReqPresence  = DefineRule("decode", "DOM-7.5.2-PRESENCE", SevError, "seed 000 Table 16; sce-token §9 #8", "reqID, resID, nonce, reqInfo and signature present; certificateChain optional; nothing else")
	ruleLUReqInfo      = DefineRule("decode", "DOM-7.5.2-REQINFO", SevError, "seed 000 §7.5.2 schema; sce-token §9 #10", "reqInfo holds exactly one rdpProxyLeaveUserDomainRequestInformation: leaveDomainRequest, then deviceCertificateChain?")
	ruleLULDREmbed     = DefineRule("decode", "DOM-7.5.2-LDR-EMBED", SevError, "seed 000 §7.5.2; sce-token §9 #11", "leaveDomainRequest base64-decodes to a well-formed roap:leaveDomainRequest")
	ruleLURIIDMatch    = DefineRule("decode", "DOM-7.5.2-RIID-MATCH", SevError, "seed 000 Table 16; sce-token §9 #13", "reqID (the RI) equals the riID inside the embedded leaveDomainRequest")
	ruleLUDevChainCond = DefineRule("decode", "DOM-7.5.2-DEVCHAIN-COND", SevError, "seed 000 §7.5.2; sce-token §9 #14", "deviceCertificateChain is present when the embedded request has no certificateChain (both present is noted)")
	ruleLUDevChainShp  = DefineRule("decode", "DOM-7.5.2-DEVCHAIN-SHAPE", SevError, "seed 000 §7.5.2; sce-token §9 #15", "deviceCertificateChain: device certificate first, each certificate issued by the next, no root")
	ruleLUDevChainKP   = DefineRule("decode", "DOM-7.5.2-DEVCHAIN-KP", SevError, "seed 000 §7.5.2; OMNA; sce-token §4, §9 #16", "The device certificate carries oma-kp-drmAgent and not oma-kp-sceDrmAgent; otherwise the DEA must answer InvalidCertificateChain")
	ruleLURespPresence = DefineRule("decode", "DOM-7.5.3-ROOT-PRESENCE", SevError, "seed 000 §7.5.3, Table 17; sce-token §9 #22", "rdpProxyLeaveUserDomainResponse on Success: status, reqID, resID, nonce, resInfo, signature; certificateChain optional")
	ruleLURespInfo     = DefineRule("decode", "DOM-7.5.3-RESINFO", SevError, "seed 000 §7.5.3 schema; sce-token §9 #25", "resInfo holds exactly one rdpProxyLeaveUserDomainResponseInformation: userDomainId, then deviceId")
	ruleTrgRoot        = DefineRule("decode", "DOM-7.6.1-ROOT", SevError, "seed 000 §7.6.1; sce-token §9 #36", "The DEA trigger is a <drmTrigger> (the prose says gen:trigger; both accepted) of type gen:DrmTrigger")
	ruleTrgPresence    = DefineRule("decode", "DOM-7.6.1-PRESENCE", SevError, "seed 000 Table 19; sce-token §9 #37", "type=rdpProxyLeaveUserDomain, version=1.0, resID, nonce, reqURL, body, signature present; id and resAlias optional")
	ruleTrgInfo        = DefineRule("decode", "DOM-7.6.1-TRGINFO", SevError, "seed 000 §7.6.1 schema; sce-token §9 #38", "body/trgInfo holds exactly one rdpProxyLeaveUserDomainTrgInformation: domainID, then deviceID 1..n")
)

// Key purposes that decide whether a device may use the proxied leave (sce-token §4).
var (
	sceOIDDrmAgent    = asn1.ObjectIdentifier{2, 23, 43, 6, 1, 2}
	sceOIDSceDrmAgent = asn1.ObjectIdentifier{2, 23, 43, 6, 1, 4}
)

const (
	sceLeaveRequest  = "rdpProxyLeaveUserDomainRequest"
	sceLeaveResponse = "rdpProxyLeaveUserDomainResponse"
	sceLeaveTrigger  = "rdpProxyLeaveUserDomain"
)

func init() {
	registerKind(sceLeaveRequest, nil, decodeProxyLeaveRequest)
	registerKind(sceLeaveResponse, nil, decodeProxyLeaveResponse)
	registerKind("drmTrigger", nil, decodeDrmTrigger)
}

// sceFallback classifies roots that no registered kind names: every rdp…Request / rdp…Response
// is a gen:Request / gen:Response whose message-specific part this tool does not know, and
// "trigger" is the seed prose's name for drmTrigger (accepted only in the gen or dom namespace,
// which the handler checks).
func sceFallback(local string) (kindEntry, bool) {
	low := strings.ToLower(local)
	switch {
	case low == "trigger":
		return kindEntry{canonical: local, fn: decodeDrmTrigger}, true
	case strings.HasPrefix(low, "rdp") && strings.HasSuffix(low, "request"):
		return kindEntry{canonical: local, fn: decodeGenericRequest}, true
	case strings.HasPrefix(low, "rdp") && strings.HasSuffix(low, "response"):
		return kindEntry{canonical: local, fn: decodeGenericResponse}, true
	}
	return kindEntry{}, false
}

// genField is where one gen field was found. The seeds fix only status as an attribute; every
// other field may be an attribute or a child element (rule 4), so both are looked for.
type genField struct {
	attr     string
	attrName string // as written; "" when there is no attribute form
	elem     *Node
}

func (g genField) hasAttr() bool { return g.attrName != "" }

// genWant names a field and its expected (ROAP-analogy) placement.
type genWant struct {
	name   string
	asAttr bool // expected as an attribute (trigger id, type, version)
}

// genPlacement finds each wanted field as attribute and as child element (local names compared
// case-insensitively) and notes every placement that differs from the expected one.
func genPlacement(m *Message, root *Node, want []genWant) map[string]genField {
	out := map[string]genField{}
	for _, w := range want {
		var g genField
		for _, a := range root.Attrs {
			if !a.IsNS && strings.EqualFold(a.Local, w.name) {
				g.attr, g.attrName = a.Value, a.Local
				break
			}
		}
		g.elem = root.ChildFold(w.name)
		path := "/" + root.Local + "/@" + w.name
		switch {
		case g.hasAttr() && g.elem != nil:
			used := "element"
			if w.asAttr {
				used = "attribute"
			}
			m.Add(ruleGenPlacement.At(path, "%s appears both as an attribute and as a child element; the %s is used", w.name, used))
		case g.hasAttr() && !w.asAttr:
			m.Add(ruleGenPlacement.At(path, "%s is carried as an attribute; by ROAP analogy it is a child element (placement not fixed by the public text)", w.name))
		case g.elem != nil && w.asAttr:
			m.Add(ruleGenPlacement.At(PathOf(g.elem), "%s is carried as a child element; by ROAP analogy it is an attribute (placement not fixed by the public text)", w.name))
		}
		out[w.name] = g
	}
	return out
}

// value returns the field's value: the form its expected placement names wins when both exist.
func (g genField) value(asAttr bool) string {
	if g.elem != nil && (!asAttr || !g.hasAttr()) {
		return g.elem.TextContent()
	}
	return g.attr
}

// genView returns a shallow copy of root without the child elements whose names (case-
// insensitive) are in skip, so that presence tables do not see fields read elsewhere. The
// children keep their real parent, so their paths are unchanged.
func genView(root *Node, skip ...string) *Node {
	v := *root
	v.Children = nil
	for _, c := range root.Children {
		drop := false
		if c.Kind == ElementNode {
			for _, s := range skip {
				if strings.EqualFold(c.Local, s) {
					drop = true
				}
			}
		}
		if !drop {
			v.Children = append(v.Children, c)
		}
	}
	return &v
}

// genAttrValue checks a field given in attribute form, which the presence engine never sees.
func genAttrValue(m *Message, path, name, v string, t VType, r Rule) {
	switch t {
	case VNonce:
		bn, err := base64Len(v)
		if err != nil || v == "" {
			m.Add(RuleBase64.At(path, "nonce attribute %s is not base64: %s", name, b64Err(v, err)))
		} else if bn < 14 {
			m.Add(RuleNonceLen.At(path, "nonce is %d octets; at least 14 expected", bn))
		}
	case VBase64:
		if _, err := base64Len(v); err != nil || v == "" {
			m.Add(RuleBase64.At(path, "attribute %s is not base64: %s", name, b64Err(v, err)))
		}
	case VAnyURI:
		if !IsAnyURI(v) {
			m.Add(RuleAnyURI.At(path, "attribute %s value %q is not a URI", name, clip(v, 60)))
		}
	default:
		if strings.TrimSpace(v) == "" {
			m.Add(r.At(path, "attribute %s is empty", name))
		}
	}
}

// genUnknownAttrs notes root attributes that no table names.
func genUnknownAttrs(m *Message, root *Node, r Rule, known ...string) {
	for _, a := range root.Attrs {
		if a.IsNS || a.Space == NSXSI {
			continue
		}
		ok := false
		for _, k := range known {
			if strings.EqualFold(a.Local, k) {
				ok = true
			}
		}
		if !ok {
			m.Add(r.AtSev(SevInfo, "/"+root.Local+"/@"+a.Local, "attribute %s is not in the %s table", a.Local, root.Local))
		}
	}
}

// genIdentifier checks an ID field (reqID, resID …) and returns its value. The contract makes
// them roap:Identifiers; for messages known only generically a plain text ID is tolerated.
func (d *state) genIdentifier(m *Message, n *Node, strict bool) string {
	if len(n.Elements()) > 0 || strict {
		d.identifier(m, n)
		return IdentifierHash(n)
	}
	v := n.TextContent()
	if v == "" {
		m.Add(RuleEmpty.At(PathOf(n), "<%s> is empty", n.Local))
	} else {
		m.Add(ruleGenShape.AtSev(SevInfo, PathOf(n), "<%s> is plain text, not a roap:Identifier (the gen type is not public)", n.Local))
	}
	return v
}

// genLayout describes one gen:Request / gen:Response instantiation.
type genLayout struct {
	response bool
	presence Rule // presence and order of the gen fields
	where    string
	open     bool // unknown children are info (generic decoding)
	strict   bool // IDs must be roap:Identifiers
	// relax makes every presence finding info and the …Info wrapper optional on a non-Success
	// response, whose GEN error layout is not public.
	relax bool
}

// genParts is what the generic gen decoder found.
type genParts struct {
	status  string
	failed  bool  // a status other than Success was read
	wrapper *Node // reqInfo or resInfo
}

// genDecode decodes the gen:Request / gen:Response fields common to every RDP message.
func (d *state) genDecode(m *Message, root *Node, l genLayout) genParts {
	var p genParts
	m.Family, m.Role = FamilySCE, RoleRI
	wrapper := "reqInfo"
	if l.response {
		m.Role, wrapper = RoleDEA, "resInfo"
		p.status = d.genStatus(m, root, m.Kind)
		p.failed = p.status != "" && p.status != "Success"
	}
	pres := l.presence
	if l.relax && p.failed {
		pres.Severity = SevInfo
	}
	fields := genPlacement(m, root, []genWant{{name: "reqID"}, {name: "resID"}, {name: "nonce"}, {name: "signature"}})
	specs := []ElemSpec{M("reqID", VAny), M("resID", VAny), M("nonce", VNonce), O("certificateChain", VChain), M(wrapper, VAny), M("signature", VBase64)}
	if l.relax && p.failed {
		specs[4].Min = 0
	}
	for i := range specs {
		if g, ok := fields[specs[i].Name]; ok && g.hasAttr() && g.elem == nil {
			specs[i].Min = 0
			path := "/" + root.Local + "/@" + g.attrName
			genAttrValue(m, path, g.attrName, g.attr, specs[i].Type, pres)
		}
	}
	skip := []string{}
	if l.response {
		skip = append(skip, "status") // read (and judged) by genStatus
	}
	f := Seq{Presence: pres, Order: pres, Where: l.where, Open: l.open}.Check(d, m, genView(root, skip...), specs)
	known := []string{"reqID", "resID", "nonce", "signature"}
	if l.response {
		known = append(known, "status")
	}
	genUnknownAttrs(m, root, pres, known...)
	for _, key := range []string{"reqID", "resID"} {
		if n := f.First(key); n != nil {
			m.setID(key, d.genIdentifier(m, n, l.strict))
		} else if g := fields[key]; g.hasAttr() {
			m.setID(key, strings.TrimSpace(g.attr))
		}
	}
	m.setID("nonce", fields["nonce"].value(false))
	if signatureSpan(m, root) == nil && fields["signature"].hasAttr() {
		m.Add(ruleGenPlacement.At("/"+root.Local+"/@signature", "the MAC is an attribute, so no signature element span can be cut out for MAC checking"))
	}
	p.wrapper = f.First(wrapper)
	return p
}

// genStatus reads a gen:Response status, which seed 000 fixes as an attribute.
func (d *state) genStatus(m *Message, root *Node, kind string) string {
	for _, a := range root.Attrs {
		if !a.IsNS && strings.EqualFold(a.Local, "status") {
			return d.status(m, root, kind)
		}
	}
	if el := root.ChildFold("status"); el != nil {
		v := el.TextContent()
		path := PathOf(el)
		m.Add(ruleGenStatusAttr.At(path, "status is a child element (%q); a gen:Response carries it as an attribute", clip(v, 60)))
		m.Status = v
		if !KnownStatus(v) {
			m.Add(RuleStatusEnum.At(path, "status %q is not a roap:Status value", clip(v, 60)))
		}
		if v == "DomainAccessDenied" {
			m.Add(RuleDADScope.At(path, "DomainAccessDenied in %s; it is only valid in joinDomainResponse", kind))
		}
		return v
	}
	m.Add(ruleGenStatusAttr.At("/"+root.Local+"/@status", "%s has no status attribute", kind))
	return ""
}

// sceRootNS notes a root outside the namespaces the reference infers for it (never an error:
// the namespace is INFERRED).
func sceRootNS(m *Message, root *Node, r Rule, preferred string) {
	switch root.Space {
	case preferred:
	case NSGEN, NSDOM:
		m.Add(r.AtSev(SevInfo, "/"+root.Local, "root <%s> is in %s; the reference infers %s", root.QName(), root.Space, preferred))
	default:
		m.Add(r.AtSev(SevWarning, "/"+root.Local, "root <%s> is in namespace %q; expected %s (INFERRED) or %s", root.QName(), root.Space, preferred, NSGEN))
	}
}

// sceInfoElement returns the single message-specific …Information element inside wrapper.
func sceInfoElement(m *Message, wrapper *Node, name string, r Rule) *Node {
	if wrapper == nil {
		return nil
	}
	var info *Node
	for _, e := range wrapper.Elements() {
		if !strings.EqualFold(strings.TrimSpace(e.Local), name) {
			m.Add(r.At(PathOf(e), "unexpected <%s> in <%s>; only <%s> is defined", e.QName(), wrapper.Local, name))
			continue
		}
		if info != nil {
			m.Add(r.At(PathOf(e), "<%s> holds more than one <%s>", wrapper.Local, name))
			continue
		}
		info = e
	}
	if info == nil {
		m.Add(r.At(PathOf(wrapper)+"/"+name, "<%s> holds no <%s>", wrapper.Local, name))
		return nil
	}
	if info.Local != name {
		m.Add(RuleChildCase.At(PathOf(info), "<%s> is spelled <%s> in the reference", info.Local, name))
	}
	if info.Space != NSDOM {
		m.Add(r.AtSev(SevInfo, PathOf(info), "<%s> is in namespace %q; the DOM schema declares it (%s)", info.Local, info.Space, NSDOM))
	}
	return info
}

func decodeGenericRequest(d *state, m *Message, root *Node) {
	p := d.genDecode(m, root, genLayout{presence: ruleGenShape, where: "gen:Request " + root.Local, open: true})
	genVariant(m, p.wrapper)
	genGenericNS(m, root)
}

func decodeGenericResponse(d *state, m *Message, root *Node) {
	p := d.genDecode(m, root, genLayout{response: true, presence: ruleGenShape, where: "gen:Response " + root.Local, open: true, relax: true})
	genVariant(m, p.wrapper)
	genGenericNS(m, root)
}

func genGenericNS(m *Message, root *Node) {
	if root.Space != NSGEN && root.Space != NSDOM {
		m.Add(ruleGenShape.AtSev(SevInfo, "/"+root.Local, "root <%s> is in namespace %q; RDP messages are expected in %s or %s", root.QName(), root.Space, NSDOM, NSGEN))
	}
}

// genVariant names a generically decoded message after its …Information element.
func genVariant(m *Message, wrapper *Node) {
	if wrapper == nil {
		return
	}
	els := wrapper.Elements()
	if len(els) == 0 {
		m.Add(ruleGenShape.At(PathOf(wrapper), "<%s> holds no …Information element", wrapper.Local))
		return
	}
	m.Variant = els[0].Local
	if len(els) > 1 {
		m.Add(ruleGenShape.At(PathOf(els[1]), "<%s> holds %d elements; one …Information element expected", wrapper.Local, len(els)))
	}
}

func decodeProxyLeaveRequest(d *state, m *Message, root *Node) {
	sceRootNS(m, root, ruleLUReqRoot, NSDOM)
	p := d.genDecode(m, root, genLayout{presence: ruleLUReqPresence, where: "rdpProxyLeaveUserDomainRequest (Table 16)", strict: true})
	info := sceInfoElement(m, p.wrapper, "rdpProxyLeaveUserDomainRequestInformation", ruleLUReqInfo)
	if info == nil {
		return
	}
	embed := ruleLULDREmbed
	f := Seq{Presence: ruleLUReqInfo, Order: ruleLUReqInfo, Where: "rdpProxyLeaveUserDomainRequestInformation"}.Check(d, m, info, []ElemSpec{
		{Name: "leaveDomainRequest", Min: 1, Max: 1, Type: VBase64, Value: &embed},
		O("deviceCertificateChain", VChain),
	})
	ldr, devCC := f.First("leaveDomainRequest"), f.First("deviceCertificateChain")
	var nested *Message
	if ldr != nil {
		if raw, err := DecodeBase64(ldr.TextContent()); err == nil && len(raw) > 0 {
			nested = d.nested(m, raw, PathOf(ldr), Hint{})
			switch {
			case nested.Kind == "unknown":
				m.Add(ruleLULDREmbed.At(PathOf(ldr), "the embedded bytes are not a leaveDomainRequest: %s", nested.Reason))
				nested = nil
			case nested.Kind != "leaveDomainRequest":
				m.Add(ruleLULDREmbed.At(PathOf(ldr), "the embedded message is a %s, not a leaveDomainRequest", nested.Kind))
				nested = nil
			}
		}
	}
	if nested != nil {
		m.setID("deviceID", nested.ID("deviceID"))
		m.setID("domainID", nested.ID("domainID"))
		m.setID("riID", nested.ID("riID"))
		if ri, req := nested.ID("riID"), m.ID("reqID"); ri != "" && req != "" && ri != req {
			m.Add(ruleLURIIDMatch.At("/"+root.Local+"/reqID", "reqID %s is not the riID %s the device addressed in the embedded leaveDomainRequest", req, ri))
		}
		hasCC := nested.Root != nil && nested.Root.Child("certificateChain") != nil
		switch {
		case !hasCC && devCC == nil:
			m.Add(ruleLUDevChainCond.At(PathOf(info)+"/deviceCertificateChain", "the embedded leaveDomainRequest has no certificateChain, so deviceCertificateChain must be present"))
		case hasCC && devCC != nil:
			m.Add(ruleLUDevChainCond.AtSev(SevInfo, PathOf(devCC), "both the embedded leaveDomainRequest and deviceCertificateChain carry a device chain (allowed)"))
		}
	}
	var device *x509.Certificate
	devicePath := ""
	if devCC != nil {
		if ch := chainAt(m, PathOf(devCC)); ch != nil {
			if len(ch.Certs) == len(devCC.ChildrenNamed("certificate")) && len(ch.Certs) > 0 {
				sceChainShape(m, PathOf(devCC), ch.Certs, m.ID("deviceID"))
			}
			if len(ch.Certs) > 0 {
				device, devicePath = ch.Certs[0], PathOf(devCC)
			}
		}
	}
	if device == nil && nested != nil && nested.Root != nil {
		if c := nested.Root.Find("certificateChain/certificate"); c != nil {
			if cert, _, err := parseCert(d.certs, c.TextContent()); err == nil {
				device, devicePath = cert, PathOf(ldr)
			}
		}
	}
	if device != nil {
		sceDeviceKeyPurposes(m, devicePath, device)
	}
}

func chainAt(m *Message, path string) *Chain {
	for i := range m.Chains {
		if m.Chains[i].Path == path {
			return &m.Chains[i]
		}
	}
	return nil
}

// sceSPKIHash is the roap:X509SPKIHash of a certificate, as a keyIdentifier carries it.
func sceSPKIHash(c *x509.Certificate) string {
	h := sha1.Sum(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(h[:])
}

// sceChainShape checks seed 000's layout of deviceCertificateChain: device certificate first,
// each certificate directly certified by the next one, root left out.
func sceChainShape(m *Message, path string, certs []*x509.Certificate, deviceID string) {
	for i, c := range certs {
		if bytes.Equal(c.RawIssuer, c.RawSubject) && sceCheckSignature(c, c) == nil {
			m.Add(ruleLUDevChainShp.At(fmt.Sprintf("%s/certificate[%d]", path, i+1), "certificate %d (%s) is a self-signed root; the chain SHALL NOT include the root certificate", i+1, c.Subject))
		}
	}
	if certs[0].BasicConstraintsValid && certs[0].IsCA {
		m.Add(ruleLUDevChainShp.At(path+"/certificate[1]", "the first certificate (%s) is a CA; the device certificate MUST come first", certs[0].Subject))
	}
	if deviceID != "" && sceSPKIHash(certs[0]) != deviceID {
		at := -1
		for i, c := range certs {
			if sceSPKIHash(c) == deviceID {
				at = i
			}
		}
		if at > 0 {
			m.Add(ruleLUDevChainShp.At(fmt.Sprintf("%s/certificate[%d]", path, at+1), "the device certificate (SPKI hash %s) is at position %d; it MUST come first", deviceID, at+1))
		} else {
			m.Add(ruleLUDevChainShp.At(path, "no certificate in the chain has the SPKI hash %s of the embedded request's deviceID; the chain must include the device's certificate", deviceID))
		}
	}
	for i := 0; i+1 < len(certs); i++ {
		child, parent := certs[i], certs[i+1]
		cp := fmt.Sprintf("%s/certificate[%d]", path, i+1)
		if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
			m.Add(ruleLUDevChainShp.At(cp, "certificate %d is issued by %q but the next certificate is %q; each certificate MUST be certified by the one after it", i+1, child.Issuer, parent.Subject))
			continue
		}
		if err := sceCheckSignature(child, parent); err != nil {
			m.Add(ruleLUDevChainShp.At(cp, "certificate %d (%s) is not signed by the next certificate (%s): %v", i+1, child.Subject, parent.Subject, err))
		}
	}
}

// sceCheckSignature is CheckSignatureFrom that also accepts SHA-1 signatures, which the Go
// library refuses and fielded DRM PKIs still use. The CA constraints on the parent are checked
// by CheckSignatureFrom before it looks at the algorithm, so the fallback keeps them.
func sceCheckSignature(child, parent *x509.Certificate) error {
	err := child.CheckSignatureFrom(parent)
	var insecure x509.InsecureAlgorithmError
	if !errors.As(err, &insecure) {
		return err
	}
	digest := sha1.Sum(child.RawTBSCertificate)
	switch child.SignatureAlgorithm {
	case x509.SHA1WithRSA:
		pub, ok := parent.PublicKey.(*rsa.PublicKey)
		if !ok {
			return errors.New("SHA1-RSA signature but the issuer key is not RSA")
		}
		return rsa.VerifyPKCS1v15(pub, crypto.SHA1, digest[:], child.Signature)
	case x509.ECDSAWithSHA1:
		pub, ok := parent.PublicKey.(*ecdsa.PublicKey)
		if !ok {
			return errors.New("ECDSA-SHA1 signature but the issuer key is not ECDSA")
		}
		if !ecdsa.VerifyASN1(pub, digest[:], child.Signature) {
			return errors.New("ECDSA-SHA1 signature does not verify")
		}
		return nil
	}
	return err
}

// sceDeviceKeyPurposes applies the DEA's key-purpose test: a plain v2.x DRM Agent only.
func sceDeviceKeyPurposes(m *Message, path string, c *x509.Certificate) {
	has := func(oid asn1.ObjectIdentifier) bool {
		for _, u := range c.UnknownExtKeyUsage {
			if u.Equal(oid) {
				return true
			}
		}
		return false
	}
	if !has(sceOIDDrmAgent) {
		m.Add(ruleLUDevChainKP.At(path, "the device certificate (%s) lacks oma-kp-drmAgent (2.23.43.6.1.2); the DEA must answer InvalidCertificateChain", c.Subject))
	}
	if has(sceOIDSceDrmAgent) {
		m.Add(ruleLUDevChainKP.At(path, "the device certificate (%s) carries oma-kp-sceDrmAgent (2.23.43.6.1.4), so it is not a v2.x DRM Agent; the DEA must answer InvalidCertificateChain", c.Subject))
	}
}

func decodeProxyLeaveResponse(d *state, m *Message, root *Node) {
	sceRootNS(m, root, ruleLURespPresence, NSDOM)
	p := d.genDecode(m, root, genLayout{response: true, presence: ruleLURespPresence, where: "rdpProxyLeaveUserDomainResponse (Table 17)", strict: true, relax: true})
	r := ruleLURespInfo
	if p.failed {
		r.Severity = SevInfo
	}
	info := sceInfoElement(m, p.wrapper, "rdpProxyLeaveUserDomainResponseInformation", r)
	if info == nil {
		return
	}
	f := Seq{Presence: r, Order: r, Where: "rdpProxyLeaveUserDomainResponseInformation"}.Check(d, m, info, []ElemSpec{
		M("userDomainId", VAny), M("deviceId", VIdentifier),
	})
	if n := f.First("userDomainId"); n != nil {
		v := n.TextContent()
		if a, ok := n.Attr("domainID"); ok && v == "" {
			v = a
			m.Add(r.AtSev(SevInfo, PathOf(n), "userDomainId carries its value in a domainID attribute; the seed types it roap:DomainIdentifier (text)"))
		}
		if v == "" {
			m.Add(r.At(PathOf(n), "userDomainId is empty"))
		}
		m.setID("domainID", v)
	}
	setIDFrom(m, "deviceID", f.First("deviceId"))
}

func decodeDrmTrigger(d *state, m *Message, root *Node) {
	isAlias := strings.EqualFold(root.Local, "trigger")
	if isAlias {
		if root.Space != NSGEN && root.Space != NSDOM {
			// A bare <trigger> elsewhere is not ours; leave it unknown as dispatch would.
			m.Family, m.Kind = FamilyUnknown, "unknown"
			m.Reason = fmt.Sprintf("unknown root element <%s> in namespace %q", root.QName(), root.Space)
			m.Add(RuleUnknownRoot.At("/"+root.Local, "root element <%s> (namespace %q) is not a message this tool decodes", root.QName(), root.Space))
			return
		}
		m.Kind = "drmTrigger"
		m.Add(ruleTrgRoot.AtSev(SevInfo, "/"+root.Local, "root is <%s>, the seed prose's name; the schema declares drmTrigger (both accepted)", root.QName()))
	} else if root.Space != NSGEN && root.Space != NSDOM {
		m.Add(ruleTrgRoot.AtSev(SevWarning, "/"+root.Local, "root <%s> is in namespace %q; expected %s (INFERRED)", root.QName(), root.Space, NSGEN))
	}
	m.Family, m.Role = FamilySCE, RoleDEA
	want := []genWant{{name: "id", asAttr: true}, {name: "type", asAttr: true}, {name: "version", asAttr: true},
		{name: "resID"}, {name: "resAlias"}, {name: "nonce"}, {name: "reqURL"}, {name: "signature"}}
	fields := genPlacement(m, root, want)
	typ := strings.TrimSpace(fields["type"].value(true))
	version := strings.TrimSpace(fields["version"].value(true))
	m.Variant = typ
	proxyLeave := typ == sceLeaveTrigger
	pres := ruleTrgPresence
	if !proxyLeave && typ != "" {
		// Table 19 is specific to this type; other drmTriggers get its gen fields as a hint only.
		pres.Severity = SevWarning
		m.Add(ruleTrgPresence.AtSev(SevInfo, "/"+root.Local+"/@type", "trigger type %q: only the rdpProxyLeaveUserDomain trigger is defined publicly; checked as a generic gen:DrmTrigger", typ))
	}
	switch {
	case typ == "":
		m.Add(ruleTrgPresence.At("/"+root.Local+"/@type", "mandatory type is missing; Table 19 fixes it to %q", sceLeaveTrigger))
	case version == "" && (fields["version"].hasAttr() || fields["version"].elem != nil):
		m.Add(pres.At("/"+root.Local+"/@version", "version is empty; Table 19 fixes it to \"1.0\""))
	case version == "":
		m.Add(pres.At("/"+root.Local+"/@version", "mandatory version is missing; Table 19 fixes it to \"1.0\""))
	case proxyLeave && version != "1.0":
		m.Add(pres.At("/"+root.Local+"/@version", "version is %q; Table 19 fixes it to \"1.0\"", clip(version, 20)))
	}
	specs := []ElemSpec{M("resID", VIdentifier), O("resAlias", VString), M("nonce", VNonce), M("reqURL", VAnyURI), M("body", VAny), M("signature", VBase64)}
	for i := range specs {
		if g := fields[specs[i].Name]; g.hasAttr() && g.elem == nil {
			specs[i].Min = 0
			genAttrValue(m, "/"+root.Local+"/@"+g.attrName, g.attrName, g.attr, specs[i].Type, pres)
		}
	}
	f := Seq{Presence: pres, Order: pres, Where: "drmTrigger (Table 19)"}.Check(d, m, genView(root, "id", "type", "version"), specs)
	genUnknownAttrs(m, root, pres, "id", "type", "version", "resID", "resAlias", "nonce", "reqURL", "signature")
	if n := f.First("resID"); n != nil {
		setIDFrom(m, "resID", n)
	} else {
		m.setID("resID", strings.TrimSpace(fields["resID"].attr))
	}
	m.setID("nonce", fields["nonce"].value(false))
	m.setID("reqURL", fields["reqURL"].value(false))
	m.setID("triggerID", strings.TrimSpace(fields["id"].value(true)))
	if signatureSpan(m, root) == nil && fields["signature"].hasAttr() {
		m.Add(ruleGenPlacement.At("/"+root.Local+"/@signature", "the MAC is an attribute, so no signature element span can be cut out for MAC checking"))
	}
	body := f.First("body")
	if body == nil {
		return
	}
	ti := ruleTrgInfo
	if !proxyLeave {
		ti.Severity = SevWarning
	}
	bf := Seq{Presence: ti, Order: ti, Where: "drmTrigger body", Open: !proxyLeave}.Check(d, m, body, []ElemSpec{M("trgInfo", VAny)})
	trgInfo := bf.First("trgInfo")
	if trgInfo == nil {
		return
	}
	if !proxyLeave {
		return
	}
	info := sceInfoElement(m, trgInfo, "rdpProxyLeaveUserDomainTrgInformation", ruleTrgInfo)
	if info == nil {
		return
	}
	tf := Seq{Presence: ruleTrgInfo, Order: ruleTrgInfo, Where: "rdpProxyLeaveUserDomainTrgInformation"}.Check(d, m, info, []ElemSpec{
		M("domainID", VAny), R("deviceID", 1, VIdentifier),
	})
	if n := tf.First("domainID"); n != nil {
		v, ok := n.Attr("domainID")
		v = strings.TrimSpace(v)
		if !ok || v == "" {
			if t := n.TextContent(); t != "" {
				v = t
				m.Add(ruleTrgInfo.AtSev(SevInfo, PathOf(n), "domainID is given as text; a dom:UserDomainIdentifier carries it in its domainID attribute"))
			}
		}
		if v == "" {
			m.Add(ruleTrgInfo.At(PathOf(n), "domainID names no domain (no domainID attribute, no text)"))
		}
		m.setID("domainID", v)
	}
	setIDsFrom(m, "deviceIDs", tf.All("deviceID"))
}
