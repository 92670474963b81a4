package decode

import (
	"fmt"
	"strings"
)

// ROAP triggers (roap-core §6): roap:roapTrigger holding one trigger element, optionally signed
// (XML-DSig HMAC plus the wrapped MAC key in encKey). The same handler serves XML triggers and
// WBXML triggers converted to a tree: the latter carry local names only and no namespaces, so
// nothing here looks at Node.Space.

var (
	roapRuleTrigShape   = DefineRule("decode", "ROAP-TRIGGER-SHAPE", SevError, "roap-core §6.1, §6.2", "A roapTrigger holds exactly one trigger element (registrationRequest, roAcquisition, joinDomain, leaveDomain or extendedTrigger) carrying riID and roapURL, then optional signature and encKey")
	roapRuleTrigOrder   = DefineRule("decode", "ROAP-TRIGGER-ORDER", SevInfo, "roap-core §6.2", "Trigger fields differ from the observed order (riID, riAlias, nonce, roapURL, kind-specific fields; then signature, encKey); agents decode them in any order, so this is only a note")
	roapRuleTrigDomain  = DefineRule("decode", "ROAP-TRIGGER-DOMAINID", SevError, "roap-core §6.2", "joinDomain and leaveDomain triggers must name the domain in domainID; Symbian rejects them otherwise")
	roapRuleTrigVersion = DefineRule("decode", "ROAP-TRIGGER-VERSION", SevWarning, "roap-core §1, §6.6", "Give roapTrigger a version attribute of 1.0, 1.1, 2.0 or 2.1")
	roapRuleTrigSig     = DefineRule("decode", "ROAP-TRIGGER-SIG", SevWarning, "roap-core §6.4", "A trigger signature must be an XML-DSig structure (ds:SignedInfo referencing the trigger element's id, ds:SignatureValue) sent together with the encKey that carries the MAC key")
	roapRuleTrigExtType = DefineRule("decode", "ROAP-TRIGGER-EXT-TYPE", SevInfo, "roap-core §5.14, §6.2", "The extendedTrigger type is none of meteringReport, roUploadRequest, leaveDomain, identificationRequest; check that the agent supports it")
	roapRuleLDTrigSig   = DefineRule("decode", "ROAP-LD-TRIGGER-SIG", SevInfo, "roap-core §6.4; sce-token §6.4, §9 #48", "A signed leaveDomain trigger carries ds:Signature (HMAC-SHA-1) and encKey wrapped under the Domain Key; supply that Domain Key to check its MAC")
)

// roapTriggerKinds maps lower-cased trigger element names to their reference spelling.
var roapTriggerKinds = map[string]string{
	"registrationrequest": "registrationRequest", "roacquisition": "roAcquisition", "joindomain": "joinDomain",
	"leavedomain": "leaveDomain", "extendedtrigger": "extendedTrigger",
}

// roapExtTriggerTypes are the extendedTrigger types named by the 2.1 WBXML value table.
var roapExtTriggerTypes = map[string]bool{
	"meteringReport": true, "roUploadRequest": true, "leaveDomain": true, "identificationRequest": true,
}

// roapTriggerVersions are the roapTrigger version values of the 2.1 WBXML value table.
var roapTriggerVersions = map[string]bool{"1.0": true, "1.1": true, "2.0": true, "2.1": true}

// roapTriggerFree names fields whose position is not known (2.1 deviceID) and that the order
// check leaves alone.
var roapTriggerFree = map[string]bool{"deviceID": true}

// roapTriggerGroup names the roAcquisition fields that repeat as groups (roID, roAlias?,
// contentID*): they share one position in the order check.
var roapTriggerGroup = map[string]bool{"roID": true, "roAlias": true, "contentID": true}

func init() {
	registerKind("roapTrigger", roapSpaces, decodeTrigger)
}

func decodeTrigger(d *state, m *Message, root *Node) {
	m.Family, m.Role = FamilyTrigger, RoleRI
	roapContentType(d, m, MIMETrig, MIMEWBXML)
	rootPath := "/" + root.Local
	if v, ok := root.Attr("version"); !ok {
		m.Add(roapRuleTrigVersion.At(rootPath+"/@version", "roapTrigger has no version attribute"))
	} else if !roapTriggerVersions[strings.TrimSpace(v)] {
		m.Add(roapRuleTrigVersion.At(rootPath+"/@version", "trigger version %q is none of 1.0, 1.1, 2.0, 2.1", clip(v, 20)))
	}

	var body, sig, enc *Node
	rank := 0
	for _, c := range root.Children {
		if c.Kind == TextNode && strings.TrimSpace(c.Text) != "" {
			m.Add(roapRuleTrigShape.AtSev(SevWarning, rootPath, "unexpected text %q inside roapTrigger", clip(c.Text, 40)))
		}
		if c.Kind != ElementNode {
			continue
		}
		r := -1
		switch lower := strings.ToLower(c.Local); {
		case roapTriggerKinds[lower] != "":
			r = 0
			if body != nil {
				m.Add(roapRuleTrigShape.At(PathOf(c), "a second trigger element <%s>; a roapTrigger holds exactly one", c.Local))
				continue
			}
			body = c
			if c.Local != roapTriggerKinds[lower] {
				m.Add(RuleChildCase.At(PathOf(c), "<%s> is spelled <%s> in the reference", c.Local, roapTriggerKinds[lower]))
			}
		case lower == "signature":
			r, sig = 1, c
		case lower == "enckey":
			r, enc = 2, c
		default:
			m.Add(roapRuleTrigShape.At(PathOf(c), "unexpected element <%s> in roapTrigger", c.QName()))
			continue
		}
		if r < rank {
			m.Add(roapRuleTrigOrder.At(PathOf(c), "<%s> comes after the %s", c.Local, [...]string{"trigger element", "signature", "encKey"}[rank]))
		} else {
			rank = r
		}
	}
	if body == nil {
		m.Add(roapRuleTrigShape.At(rootPath, "roapTrigger holds no trigger element"))
		return
	}
	m.Variant = roapTriggerKinds[strings.ToLower(body.Local)]
	id, hasID := body.Attr("id")
	if hasID {
		if !IsNCName(id) {
			m.Add(RuleNCName.At(PathOf(body)+"/@id", "trigger id %q is not an NCName (xs:ID)", clip(id, 40)))
		}
		m.setID("triggerID", id)
	}
	extType := ""
	if m.Variant == "extendedTrigger" {
		extType = roapRequireAttr(m, body, "type", roapRuleTrigShape)
		m.setID("triggerType", extType)
		if extType != "" && !roapExtTriggerTypes[extType] {
			m.Add(roapRuleTrigExtType.At(PathOf(body)+"/@type", "extendedTrigger type %q is not a known type", clip(extType, 40)))
		}
	}
	f := roapTriggerFields(d, m, body, m.Variant)
	leave := m.Variant == "leaveDomain" || (m.Variant == "extendedTrigger" && extType == "leaveDomain")
	if dom := f.First("domainID"); dom == nil {
		switch {
		case m.Variant == "joinDomain" || m.Variant == "leaveDomain":
			m.Add(roapRuleTrigDomain.At(PathOf(body)+"/domainID", "%s trigger without domainID", m.Variant))
		case leave:
			m.Add(roapRuleTrigDomain.AtSev(SevWarning, PathOf(body)+"/domainID", "extended leaveDomain trigger without domainID: the agent cannot tell which domain to leave"))
		}
	} else {
		roapDomainIDForm(m, dom)
	}

	if sig != nil {
		signatureSpan(m, root)
		roapTriggerSignature(m, sig, enc, id, leave, f.Text("domainID"))
	} else if enc != nil {
		m.Add(roapRuleTrigSig.At(PathOf(enc), "encKey without a signature: a MAC key is delivered but nothing is signed"))
	}
}

// roapTriggerFields checks the fields of the trigger element order-insensitively and records the
// trigger's identifying values.
func roapTriggerFields(d *state, m *Message, body *Node, kind string) Found {
	specs := []ElemSpec{M("riID", VIdentifier), O("riAlias", VString), O("nonce", VNonce), M("roapURL", VAnyURI)}
	open := false
	switch kind {
	case "roAcquisition":
		specs = append(specs, O("domainID", VDomainID), O("domainAlias", VString), R("roID", 1, VNCName), R("roAlias", 0, VString), R("contentID", 0, VAnyURI))
	case "joinDomain", "leaveDomain":
		// domainID is mandatory, but its absence has its own rule (Symbian rejects the trigger).
		specs = append(specs, O("domainID", VDomainID), O("domainAlias", VString))
	case "extendedTrigger":
		// The content model is not public (roap-core §13 item 5): the 2.1 token table's names
		// are accepted, others noted.
		open = true
		specs = append(specs, O("domainID", VDomainID), O("domainAlias", VString), R("roID", 0, VNCName), R("roAlias", 0, VString),
			R("contentID", 0, VAnyURI), O("trgLeaveDomain", VAny))
	}
	specs = append(specs, R("deviceID", 0, VIdentifier))
	n := len(m.Findings)
	f := Seq{Presence: roapRuleTrigShape, Order: roapRuleTrigOrder, Where: kind + " trigger", Open: open}.Check(d, m, body, specs)
	// The table's own order check does not know groups or free fields; redo it below.
	roapDropFindings(m, n, func(x Finding) bool { return x.Rule == roapRuleTrigOrder.ID })
	roapTriggerOrder(m, body, specs)

	setIDFrom(m, "riID", f.First("riID"))
	m.setID("nonce", f.Text("nonce"))
	m.setID("roapURL", f.Text("roapURL"))
	m.setID("domainID", f.Text("domainID"))
	m.setID("roIDs", strings.Join(roapTexts(f.All("roID")), ","))
	m.setID("contentIDs", strings.Join(roapTexts(f.All("contentID")), ","))
	setIDsFrom(m, "deviceIDs", f.All("deviceID"))
	return f
}

// roapTriggerOrder notes fields out of the observed order. roID groups share one position and
// must start with roID; fields of unknown position are skipped.
func roapTriggerOrder(m *Message, body *Node, specs []ElemSpec) {
	rank := map[string]int{}
	for i, s := range specs {
		k := strings.ToLower(s.Name)
		if roapTriggerGroup[s.Name] {
			if g, ok := rank["roid"]; ok {
				i = g
			}
		}
		rank[k] = i
	}
	last, lastName, inGroup := -1, "", false
	for _, c := range body.Elements() {
		r, ok := rank[strings.ToLower(c.Local)]
		if !ok || roapTriggerFree[c.Local] {
			continue
		}
		if roapTriggerGroup[c.Local] && !inGroup && !strings.EqualFold(c.Local, "roID") {
			m.Add(roapRuleTrigOrder.At(PathOf(c), "<%s> comes before any roID; each group starts with the roID it describes", c.Local))
		}
		if strings.EqualFold(c.Local, "roID") {
			inGroup = true
		}
		if r < last {
			m.Add(roapRuleTrigOrder.At(PathOf(c), "<%s> comes after <%s>; observed triggers put it before", c.Local, lastName))
			continue
		}
		last, lastName = r, c.Local
	}
}

func roapTexts(ns []*Node) []string {
	var out []string
	for _, n := range ns {
		if v := n.TextContent(); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// roapTriggerSignature checks a trigger's signature and encKey (roap-core §6.4).
func roapTriggerSignature(m *Message, sig, enc *Node, id string, leave bool, domainID string) {
	path := PathOf(sig)
	container := sig
	if s := sig.Child("Signature"); s != nil {
		container = s // a ds:Signature wrapper inside <signature>
	}
	structured := len(container.Elements()) > 0
	if !structured {
		txt := sig.TextContent()
		if txt == "" {
			txt = "(empty)"
		}
		m.Add(roapRuleTrigSig.At(path, "signature holds plain text %q, not an XML-DSig structure (ds:SignedInfo, ds:SignatureValue)", clip(txt, 40)))
	} else {
		if si := container.Child("SignedInfo"); si == nil {
			m.Add(roapRuleTrigSig.At(PathOf(container)+"/SignedInfo", "signature has no ds:SignedInfo"))
		} else {
			want := ""
			if id != "" {
				want = "#" + id
			} else {
				m.Add(roapRuleTrigSig.At(path, "the trigger element has no id attribute, so the signature's Reference cannot point at it"))
			}
			roapSignedInfo(m, si, roapRuleTrigSig, want)
		}
		if sv := container.Child("SignatureValue"); sv == nil {
			m.Add(roapRuleTrigSig.At(PathOf(container)+"/SignatureValue", "signature has no ds:SignatureValue"))
		} else if _, err := base64Len(sv.TextContent()); err != nil || sv.TextContent() == "" {
			m.Add(RuleBase64.At(PathOf(sv), "SignatureValue is not base64: %s", b64Err(sv.TextContent(), err)))
		}
	}
	if enc == nil {
		m.Add(roapRuleTrigSig.At(PathOf(sig.Parent)+"/encKey", "signed trigger without encKey: the agent has no MAC key to check it with"))
	} else {
		if em := enc.Child("EncryptionMethod"); em == nil {
			m.Add(roapRuleTrigSig.At(PathOf(enc)+"/EncryptionMethod", "encKey has no EncryptionMethod"))
		} else if a := roapAlgorithm(em); leave && a != AlgKWAES {
			m.Add(roapRuleTrigSig.At(PathOf(em), "leaveDomain trigger MAC key is wrapped with %q; agents unwrap it with kw-aes128 under the Domain Key", a))
		}
		roapCipherValue(m, enc, roapRuleTrigSig)
	}
	if leave {
		gen := "unknown"
		if g, ok := roapDomainGen(domainID); ok {
			gen = fmt.Sprintf("%03d", g)
		}
		m.Add(roapRuleLDTrigSig.At(path, "signed leaveDomain trigger for %s: its MAC key is wrapped under the Domain Key of generation %s; the MAC is checkable only with that key", clip(domainID, 40), gen))
	}
}
