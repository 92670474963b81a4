package decode

import (
	"strings"
)

// XBS / SRM 1.1 token messages (sce-token §7): TokenDeliveryResponse exactly per seed 001, and
// tokenRequest / tokenConsumptionReport in the shape the shared contract chose (their real
// schema is not public, so their tables are open and only warn). Cross-message rules (nonce and
// ID echoes, replay, reporting timeliness, OCSP against registration) belong to verify/.

var (
	ruleXBSRoot       = DefineRule("decode", "XBS-9.2.3-ROOT", SevError, "seed 001 §9.2.3.1; sce-token §7.2, §9 #49", "TokenDeliveryResponse (or tokenDeliveryResponse) in the ROAP 1.0 or XBS 2.1 namespace, with a status attribute")
	ruleXBSMode       = DefineRule("decode", "XBS-9.2.3-MODE", SevInfo, "seed 001 Figure 1; sce-token §9 #50", "A TokenDeliveryResponse is 2-pass (answers a TokenRequest or TokenConsumptionReport) or 1-pass (pushed without a request)")
	ruleXBSPresence   = DefineRule("decode", "XBS-9.2.3-PRESENCE", SevError, "seed 001 Figure 1; sce-token §7.3, §9 #51", "Children present or absent per the presence table of the mode (1-pass: no nonce; 2-pass Success: nonce)")
	ruleXBSOrder      = DefineRule("decode", "XBS-9.2.3-ORDER", SevError, "seed 001 Figure 2; sce-token §7.2, §9 #52", "Children in schema order (not the table's order)")
	ruleXBSErrorEmpty = DefineRule("decode", "XBS-9.2.3-ERROR-EMPTY", SevError, "seed 001 Figure 1; sce-token §9 #53", "A TokenDeliveryResponse whose status is not Success carries the status only")
	ruleXBSStatusEnum = DefineRule("decode", "XBS-9.2.3-STATUS-ENUM", SevError, "seed 001 Figure 3; sce-token §7.6, §9 #54", "status is one of the 22 values of the updated Status type")
	ruleXBSTDID       = DefineRule("decode", "XBS-9.2.3-TDID-XSID", SevWarning, "seed 001 Figure 2; sce-token §9 #62", "tokenDeliveryID is an xs:ID (NCName)")
	ruleXBSQty        = DefineRule("decode", "XBS-9.2.3-QTY", SevError, "seed 001 §9.2.3; sce-token §9 #64", "tokenQuantity is a signed integer (+ add, - remove, 0 acknowledge a consumption report)")
	ruleXBSNeedURL    = DefineRule("decode", "XBS-9.2.3-REPORT-FIELDS-NEED-URL", SevWarning, "seed 001 §9.2.3 (should); sce-token §9 #66", "Reporting times and latestTokenConsumptionTime appear only with a tokenReportingURL")
	ruleXBSWindow     = DefineRule("decode", "XBS-9.2.3-REPORT-WINDOW", SevWarning, "seed 001 §9.2.3; sce-token §9 #67", "earliestReportingTime is before latestReportingTime")
	ruleXBSLTCT       = DefineRule("decode", "XBS-9.2.3-LTCT-AFTER-WINDOW", SevWarning, "sce-token §9 #68 (INFERRED)", "latestReportingTime is not after latestTokenConsumptionTime")
	ruleXBSOCSP       = DefineRule("decode", "XBS-9.2.3-OCSP", SevError, "seed 001 Figure 1 and §9.2.3; sce-token §9 #73", "A 1-pass TokenDeliveryResponse carries ocspResponse (the table says M; a NoOCSPResponse negotiated at registration excuses it)")
	ruleXBSMovable    = DefineRule("decode", "XBS-9.2.3-EXT-MOVABLE", SevInfo, "seed 001 §9.2.3; sce-token §7.5, §9 #76", "The Movable extension (tokens portable) has no content")
	ruleXBSDomainID   = DefineRule("decode", "XBS-9.2.3-EXT-DOMAINID", SevWarning, "seed 001 §9.2.3; sce-token §7.5, §9 #77", "The DomainID extension holds exactly one domainID, an NCName naming a Broadcast Domain")
	ruleTokReqShape   = DefineRule("decode", "XBS-TOKREQ-SHAPE", SevWarning, "sce-token §7.7; shared contract (schema not public)", "tokenRequest children: deviceID, riID, nonce, time, tokenDeliveryID?, certificateChain?, extensions?, signature")
	ruleTokTCRShape   = DefineRule("decode", "XBS-TCR-SHAPE", SevWarning, "sce-token §7.7; shared contract (schema not public)", "tokenConsumptionReport children: deviceID, riID, nonce, time, tokenDeliveryID, tokensConsumed, certificateChain?, extensions?, signature")
)

const tokTDR = "TokenDeliveryResponse"

// Variants of TokenDeliveryResponse (the three columns of seed 001 Figure 1).
const (
	TokenTwoPassSuccess = "2-pass-success"
	TokenTwoPassFailure = "2-pass-failure"
	TokenOnePass        = "1-pass"
)

// tokStatus22 is the Status type after seed 001 (Figure 3): the 20 DRM 2.x values plus the two
// token values. The ROAP catalogue knows more values (metering, UnknownError), which are not
// valid here.
var tokStatus22 = map[string]bool{
	"Success": true, "Abort": true, "NotSupported": true, "AccessDenied": true, "NotFound": true,
	"MalformedRequest": true, "UnknownCriticalExtension": true, "UnsupportedVersion": true,
	"UnsupportedAlgorithm": true, "NoCertificateChain": true, "InvalidCertificateChain": true,
	"TrustedRootCertificateNotPresent": true, "SignatureError": true, "DeviceTimeError": true,
	"NotRegistered": true, "InvalidDCFHash": true, "InvalidDomain": true, "DomainFull": true,
	"DomainAccessDenied": true, "RightsExpired": true,
	"TokenConsumptionReportError": true, "NoTokenConsumptionReport": true,
}

func init() {
	registerKind(tokTDR, []string{NSROAP, NSXBS}, decodeTokenDeliveryResponse)
	registerKind("tokenRequest", []string{NSROAP, NSXBS}, decodeTokenRequest)
	registerKind("tokenConsumptionReport", []string{NSROAP, NSXBS}, decodeTokenConsumptionReport)
}

func decodeTokenDeliveryResponse(d *state, m *Message, root *Node) {
	m.Family, m.Role = FamilyToken, RoleRI
	rootPath := "/" + root.Local
	switch root.Space {
	case NSROAP:
		m.Add(ruleXBSRoot.AtSev(SevInfo, rootPath, "namespace %s (DRM 2.x ROAP, as seed 001 writes it)", NSROAP))
	case NSXBS:
		m.Add(ruleXBSRoot.AtSev(SevInfo, rootPath, "namespace %s (XBS ROAP 2.1, BCAST 1.1 and later)", NSXBS))
	default:
		m.Add(ruleXBSRoot.At(rootPath, "namespace %q; a TokenDeliveryResponse is in %s or %s", root.Space, NSROAP, NSXBS))
	}

	status := ""
	hasStatus := false
	for _, a := range root.Attrs {
		if !a.IsNS && strings.EqualFold(a.Local, "status") {
			hasStatus = true
		}
	}
	if hasStatus {
		status = d.status(m, root, tokTDR)
		if !tokStatus22[status] {
			m.Add(ruleXBSStatusEnum.At(rootPath+"/@status", "status %q is not one of the 22 values of the token Status type", clip(status, 60)))
		}
	} else {
		m.Add(ruleXBSRoot.At(rootPath+"/@status", "TokenDeliveryResponse has no status attribute"))
	}
	failed := status != "" && status != "Success"

	// Mode: the transport knows best; otherwise the body has to tell.
	answers := strings.ToLower(d.hint.Answers)
	nonce := root.ChildFold("nonce")
	switch {
	case d.hint.Pushed:
		m.Variant = TokenOnePass
		m.Add(ruleXBSMode.At(rootPath, "1-pass: the message was pushed without a request"))
		if failed {
			m.Add(ruleXBSMode.AtSev(SevWarning, rootPath+"/@status", "a pushed (1-pass) TokenDeliveryResponse with status %s; seed 001 defines failures only for 2-pass", status))
		}
	case answers == "tokenrequest" || answers == "tokenconsumptionreport":
		m.Variant = TokenTwoPassSuccess
		if failed {
			m.Variant = TokenTwoPassFailure
		}
		m.Add(ruleXBSMode.At(rootPath, "2-pass: answers a %s on the same exchange", d.hint.Answers))
	case failed:
		m.Variant = TokenTwoPassFailure
		m.Add(ruleXBSMode.At(rootPath, "2-pass failure inferred from the status (no request known)"))
	case nonce != nil:
		m.Variant = TokenTwoPassSuccess
		m.Add(ruleXBSMode.At(rootPath, "2-pass inferred from the body: it carries a device nonce (no request known)"))
	default:
		m.Variant = TokenOnePass
		m.Add(ruleXBSMode.At(rootPath, "1-pass inferred from the body: it carries no device nonce (no request known)"))
	}

	signatureSpan(m, root)
	if failed {
		failEmpty(m, root, ruleXBSErrorEmpty)
		// Still name what the faulty body says, so the trail can be followed.
		setIDFrom(m, "deviceID", root.Child("deviceID"))
		setIDFrom(m, "riID", root.Child("riID"))
		m.setID("tokenDeliveryID", root.Child("tokenDeliveryID").TextContent())
		return
	}

	tdid, qty := ruleXBSTDID, ruleXBSQty
	nonceSpec := M("nonce", VNonce)
	if m.Variant == TokenOnePass {
		nonceSpec = Absent("nonce")
	}
	where := "2-pass Success TokenDeliveryResponse"
	if m.Variant == TokenOnePass {
		where = "1-pass TokenDeliveryResponse"
	}
	f := Seq{Presence: ruleXBSPresence, Order: ruleXBSOrder, Where: where}.Check(d, m, root, []ElemSpec{
		M("deviceID", VIdentifier),
		M("riID", VIdentifier),
		{Name: "tokenDeliveryID", Min: 1, Max: 1, Type: VNCName, Value: &tdid},
		nonceSpec,
		{Name: "tokenQuantity", Min: 1, Max: 1, Type: VInteger, Value: &qty},
		O("tokenReportingURL", VAnyURI),
		O("earliestReportingTime", VDateTime),
		O("latestReportingTime", VDateTime),
		O("latestTokenConsumptionTime", VDateTime),
		O("certificateChain", VChain),
		R("ocspResponse", 0, VOCSP),
		O("extensions", VExtensions),
		M("signature", VBase64),
	})
	if m.Variant == TokenOnePass && len(f.All("ocspResponse")) == 0 {
		m.Add(ruleXBSOCSP.At(rootPath+"/ocspResponse", "1-pass TokenDeliveryResponse carries no ocspResponse, which the table makes mandatory; only a NoOCSPResponse extension the device sent in its RegistrationRequest (and the RI honoured) would excuse it"))
	}

	setIDFrom(m, "deviceID", f.First("deviceID"))
	setIDFrom(m, "riID", f.First("riID"))
	m.setID("tokenDeliveryID", f.Text("tokenDeliveryID"))
	m.setID("nonce", f.Text("nonce"))
	m.setID("tokenReportingURL", f.Text("tokenReportingURL"))
	for _, k := range []string{"earliestReportingTime", "latestReportingTime", "latestTokenConsumptionTime"} {
		m.setID(k, f.Text(k))
	}
	if q := f.First("tokenQuantity"); q != nil && IsInteger(q.TextContent()) {
		v := q.TextContent()
		m.setID("tokenQuantity", v)
		effect := "adds tokens to the device's store"
		switch {
		case strings.TrimLeft(v, "+-0") == "":
			effect = "acknowledges a token consumption report (no tokens)"
		case v[0] == '-':
			effect = "removes tokens from the device's store"
		}
		m.Add(ruleXBSQty.AtSev(SevInfo, PathOf(q), "tokenQuantity %s %s", v, effect))
	}
	tokReportFields(m, f)
	if ext := f.First("extensions"); ext != nil {
		tokExtensions(m, ext)
	}
}

// tokReportFields applies the reporting-window rules that one message can decide.
func tokReportFields(m *Message, f Found) {
	if f.First("tokenReportingURL") == nil {
		for _, k := range []string{"earliestReportingTime", "latestReportingTime", "latestTokenConsumptionTime"} {
			if n := f.First(k); n != nil {
				m.Add(ruleXBSNeedURL.At(PathOf(n), "<%s> without a tokenReportingURL; it should only be given when consumption must be reported", k))
			}
		}
	}
	at := func(k string) (n *Node, ok bool, t int64) {
		n = f.First(k)
		if n == nil {
			return nil, false, 0
		}
		tm, _, err := ParseDateTime(n.TextContent())
		if err != nil {
			return n, false, 0
		}
		return n, true, tm.UnixNano()
	}
	en, eok, e := at("earliestReportingTime")
	ln, lok, l := at("latestReportingTime")
	_, cok, c := at("latestTokenConsumptionTime")
	if eok && lok && e >= l {
		m.Add(ruleXBSWindow.At(PathOf(en), "earliestReportingTime %s is not before latestReportingTime %s: the reporting window is empty", en.TextContent(), ln.TextContent()))
	}
	if lok && cok && l > c {
		m.Add(ruleXBSLTCT.At(PathOf(ln), "latestReportingTime %s is after latestTokenConsumptionTime %s: tokens would be blocked before the report is due", ln.TextContent(), f.Text("latestTokenConsumptionTime")))
	}
}

// tokExtensions reads the two token-portability extensions of seed 001 (matched by the local
// part of xsi:type, whatever the prefix).
func tokExtensions(m *Message, ext *Node) {
	seen := map[string]bool{}
	for e := range ext.EachNamed("extension") {
		t, _ := xsiTypeLocal(e)
		path := PathOf(e)
		switch {
		case strings.EqualFold(t, "Movable"):
			if seen["movable"] {
				m.Add(ruleXBSMovable.AtSev(SevWarning, path, "Movable extension repeated"))
			}
			seen["movable"] = true
			m.setID("movable", "true")
			if len(e.Elements()) > 0 || e.TextContent() != "" {
				m.Add(ruleXBSMovable.AtSev(SevWarning, path, "Movable extension has content; it is defined empty"))
			} else {
				m.Add(ruleXBSMovable.At(path, "tokens of this delivery may be moved to another device"))
			}
		case strings.EqualFold(t, "DomainID"):
			if seen["domain"] {
				m.Add(ruleXBSDomainID.At(path, "DomainID extension repeated"))
			}
			seen["domain"] = true
			ids := e.ChildrenNamed("domainID")
			if len(ids) != 1 {
				m.Add(ruleXBSDomainID.At(path, "DomainID extension holds %d domainID elements; exactly one expected", len(ids)))
			}
			for _, other := range e.Elements() {
				if other.Local != "domainID" {
					m.Add(ruleXBSDomainID.At(PathOf(other), "unexpected <%s> in the DomainID extension", other.Local))
				}
			}
			if len(ids) > 0 {
				v := ids[0].TextContent()
				if !IsNCName(v) {
					m.Add(ruleXBSDomainID.At(PathOf(ids[0]), "domainID %q is not an NCName (xs:ID)", clip(v, 40)))
				}
				m.setID("domainID", v)
			}
		}
	}
}

// tokenDeviceMessage decodes the device→RI token messages of the shared contract. Their real
// schema is not public: unknown children are noted, never refused.
func tokenDeviceMessage(d *state, m *Message, root *Node, r Rule, specs []ElemSpec) Found {
	m.Family, m.Role = FamilyToken, RoleDevice
	f := Seq{Presence: r, Order: r, Where: m.Kind + " (shared contract)", Open: true}.Check(d, m, root, specs)
	setIDFrom(m, "deviceID", f.First("deviceID"))
	setIDFrom(m, "riID", f.First("riID"))
	m.setID("nonce", f.Text("nonce"))
	m.setID("tokenDeliveryID", f.Text("tokenDeliveryID"))
	signatureSpan(m, root)
	return f
}

func decodeTokenRequest(d *state, m *Message, root *Node) {
	tokenDeviceMessage(d, m, root, ruleTokReqShape, []ElemSpec{
		M("deviceID", VIdentifier), M("riID", VIdentifier), M("nonce", VNonce), M("time", VDateTime),
		O("tokenDeliveryID", VNCName), O("certificateChain", VChain), O("extensions", VExtensions), M("signature", VBase64),
	})
}

func decodeTokenConsumptionReport(d *state, m *Message, root *Node) {
	f := tokenDeviceMessage(d, m, root, ruleTokTCRShape, []ElemSpec{
		M("deviceID", VIdentifier), M("riID", VIdentifier), M("nonce", VNonce), M("time", VDateTime),
		M("tokenDeliveryID", VNCName), M("tokensConsumed", VInteger), O("certificateChain", VChain),
		O("extensions", VExtensions), M("signature", VBase64),
	})
	if n := f.First("tokensConsumed"); n != nil && IsInteger(n.TextContent()) {
		v := n.TextContent()
		m.setID("tokensConsumed", v)
		if v[0] == '-' {
			m.Add(ruleTokTCRShape.At(PathOf(n), "tokensConsumed is negative (%s)", v))
		}
	}
}
