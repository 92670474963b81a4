package decode

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/asn1"
	"strings"
	"testing"
)

var (
	tokDevHash   = sceHashOf("ACME Phone 3000 #4711")
	tokRIHash    = sceHashOf("ACME Rights Issuer")
	tokReqNonce  = "2AK0eNzeUFXfOhHE1l9Z8w=="
	tokRepNonce  = "Md6fOcDictkVfOH4qajqKA=="
	tokReportURL = "https://ri.example.invalid/token-report"
)

// tokOCSP is a DER OCSPResponse (RFC 6960) with status tryLater, which needs no body: enough
// for the decoder, which only checks the outer structure.
func tokOCSP(t *testing.T) string {
	t.Helper()
	der, err := asn1.Marshal(ocspResponseASN1{Status: 3})
	if err != nil {
		t.Fatal(err)
	}
	return sceB64(der)
}

// tokSign appends an RSA-PSS (SHA-1, salt 20) signature over the message without its signature
// element, as the contract has the RI sign.
func tokSign(t *testing.T, root *Node) *Node {
	t.Helper()
	root.Remove("signature")
	digest := sha1.Sum(root.BytesWithout("signature"))
	sig, err := rsa.SignPSS(rand.Reader, sceKey(t, 4), crypto.SHA1, digest[:], &rsa.PSSOptions{SaltLength: 20})
	if err != nil {
		t.Fatal(err)
	}
	root.Children = append(root.Children, El("signature", sceB64(sig)))
	resolveTree(root)
	return root
}

type tokTDROpts struct {
	name, prefix, ns string
	nonce            string // "" leaves it out
	ocsp             bool
	report           bool // URL and the three times
	ext              *Node
}

func tokBuildTDR(t *testing.T, o tokTDROpts) *Node {
	t.Helper()
	if o.name == "" {
		o.name = tokTDR
	}
	if o.prefix == "" {
		o.prefix, o.ns = "roap", NSROAP
	}
	pki := sceNewPKI(t)
	var nonce, ocsp, url, e, l, c *Node
	if o.nonce != "" {
		nonce = El("nonce", o.nonce)
	}
	if o.ocsp {
		ocsp = El("ocspResponse", tokOCSP(t))
	}
	if o.report {
		url = El("tokenReportingURL", tokReportURL)
		e = El("earliestReportingTime", "2011-07-06T00:00:00Z")
		l = El("latestReportingTime", "2011-07-08T00:00:00Z")
		c = El("latestTokenConsumptionTime", "2011-07-09T00:00:00Z")
	}
	return tokSign(t, El(o.prefix+":"+o.name, NS(o.prefix, o.ns), NS("xsi", NSXSI), A("status", "Success"),
		El("deviceID", sceKeyID(tokDevHash)), El("riID", sceKeyID(tokRIHash)),
		El("tokenDeliveryID", "tdid-0001"), nonce, El("tokenQuantity", "10"),
		url, e, l, c, sceChainEl("certificateChain", pki.root), ocsp, o.ext))
}

func tokExts() *Node {
	return El("extensions",
		El("extension", A("critical", "false"), A("xsi:type", "roap:Movable")),
		El("extension", A("critical", "false"), A("xsi:type", "roap:DomainID"), El("domainID", "bcdom-7")))
}

func tokFinding(m *Message, id string) *Finding {
	for i := range m.Findings {
		if m.Findings[i].Rule == id {
			return &m.Findings[i]
		}
	}
	return nil
}

func TestTokenDeliveryResponseValid(t *testing.T) {
	root := tokBuildTDR(t, tokTDROpts{nonce: tokReqNonce, ocsp: true, report: true, ext: tokExts()})
	m := sceDecodeTree(root, Hint{Answers: "tokenRequest", Direction: DirResponse})
	if m.Family != FamilyToken || m.Kind != tokTDR || m.Role != RoleRI || m.Variant != TokenTwoPassSuccess || m.Status != "Success" {
		t.Fatalf("got %s/%s/%s %q %q:%s", m.Family, m.Kind, m.Variant, m.Role, m.Status, sceFindingsString(m))
	}
	sceClean(t, m)
	for k, v := range map[string]string{"deviceID": tokDevHash, "riID": tokRIHash, "tokenDeliveryID": "tdid-0001",
		"nonce": tokReqNonce, "tokenQuantity": "10", "tokenReportingURL": tokReportURL, "domainID": "bcdom-7", "movable": "true"} {
		if m.ID(k) != v {
			t.Errorf("ID %s = %q, want %q", k, m.ID(k), v)
		}
	}
	if !bytes.Equal(m.SignedBytes(), root.BytesWithout("signature")) {
		t.Error("SignedBytes does not cut exactly the signature element")
	}
	if len(m.Chains) != 1 || len(m.Chains[0].Certs) != 1 || len(m.OCSP) != 1 {
		t.Errorf("chains %d ocsp %d", len(m.Chains), len(m.OCSP))
	}
	sceWant(t, m, "XBS-9.2.3-EXT-MOVABLE", SevInfo)
	sceWant(t, m, "XBS-9.2.3-MODE", SevInfo)
	if f := tokFinding(m, "XBS-9.2.3-ROOT"); f == nil || f.Severity != SevInfo || !strings.Contains(f.Message, NSROAP) {
		t.Errorf("namespace not logged: %+v", f)
	}

	// XBS 2.1 namespace and the lower-case root name are the same message.
	x := tokBuildTDR(t, tokTDROpts{name: "tokenDeliveryResponse", prefix: "xbs", ns: NSXBS, nonce: tokReqNonce})
	m = sceDecodeTree(x, Hint{Answers: "TokenRequest"})
	if m.Kind != tokTDR || m.Variant != TokenTwoPassSuccess {
		t.Fatalf("got %s/%s", m.Kind, m.Variant)
	}
	sceClean(t, m)
	sceWant(t, m, "DEC-ROOT-CASE", SevInfo)
	if f := tokFinding(m, "XBS-9.2.3-ROOT"); f == nil || !strings.Contains(f.Message, NSXBS) {
		t.Errorf("XBS namespace not logged: %+v", f)
	}

	// A new token status is valid here, and only here.
	fail := El("roap:TokenDeliveryResponse", NS("roap", NSROAP), A("status", "TokenConsumptionReportError"))
	m = sceDecodeTree(fail, Hint{Answers: "tokenConsumptionReport"})
	if m.Variant != TokenTwoPassFailure {
		t.Errorf("variant %q", m.Variant)
	}
	sceClean(t, m)
}

func TestTokenDeliveryResponseMode(t *testing.T) {
	withNonce := tokBuildTDR(t, tokTDROpts{nonce: tokRepNonce})
	noNonce := tokBuildTDR(t, tokTDROpts{ocsp: true})
	failed := El("roap:TokenDeliveryResponse", NS("roap", NSROAP), A("status", "NotRegistered"))
	cases := []struct {
		name     string
		root     *Node
		hint     Hint
		variant  string
		inferred bool
	}{
		{"pushed", noNonce, Hint{Pushed: true}, TokenOnePass, false},
		{"answers a request", withNonce, Hint{Answers: "tokenRequest"}, TokenTwoPassSuccess, false},
		{"answers a report", withNonce, Hint{Answers: "tokenconsumptionreport"}, TokenTwoPassSuccess, false},
		{"answers with failure", failed, Hint{Answers: "tokenRequest"}, TokenTwoPassFailure, false},
		{"body with nonce", withNonce, Hint{}, TokenTwoPassSuccess, true},
		{"body without nonce", noNonce, Hint{}, TokenOnePass, true},
		{"body with failure", failed, Hint{}, TokenTwoPassFailure, true},
		{"unrelated request", noNonce, Hint{Answers: "roRequest"}, TokenOnePass, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := sceDecodeTree(c.root, c.hint)
			if m.Variant != c.variant {
				t.Fatalf("variant %q, want %q", m.Variant, c.variant)
			}
			sceClean(t, m)
			f := tokFinding(m, "XBS-9.2.3-MODE")
			if f == nil || f.Severity != SevInfo {
				t.Fatalf("no MODE note:%s", sceFindingsString(m))
			}
			if got := strings.Contains(f.Message, "inferred"); got != c.inferred {
				t.Errorf("MODE says %q; inferred want %v", f.Message, c.inferred)
			}
		})
	}
}

func TestTokenDeliveryResponseBroken(t *testing.T) {
	type tc struct {
		name   string
		opts   tokTDROpts
		hint   Hint
		mutate func(r *Node)
		rule   string
		sev    Severity
	}
	twoPass := Hint{Answers: "tokenRequest"}
	pushed := Hint{Pushed: true}
	ok2 := tokTDROpts{nonce: tokReqNonce, report: true}
	ok1 := tokTDROpts{ocsp: true, report: true}
	set := func(name, v string) func(r *Node) { return func(r *Node) { r.Child(name).SetText(v) } }
	cases := []tc{
		{"1-pass with nonce", tokTDROpts{nonce: tokReqNonce, ocsp: true}, pushed, nil, "XBS-9.2.3-PRESENCE", SevError},
		{"1-pass without OCSP", tokTDROpts{}, pushed, nil, "XBS-9.2.3-OCSP", SevError},
		{"2-pass without nonce", tokTDROpts{}, twoPass, nil, "XBS-9.2.3-PRESENCE", SevError},
		{"no deviceID", ok2, twoPass, func(r *Node) { r.Remove("deviceID") }, "XBS-9.2.3-PRESENCE", SevError},
		{"no tokenQuantity", ok2, twoPass, func(r *Node) { r.Remove("tokenQuantity") }, "XBS-9.2.3-PRESENCE", SevError},
		{"no signature", ok1, pushed, func(r *Node) { r.Remove("signature") }, "XBS-9.2.3-PRESENCE", SevError},
		{"unknown child", ok2, twoPass, func(r *Node) {
			r.Children = append([]*Node{El("tokenType", "gold")}, r.Children...)
		}, "XBS-9.2.3-PRESENCE", SevError},
		{"table order instead of schema order", ok2, twoPass, func(r *Node) {
			// The seed's table lists latestTokenConsumptionTime before the reporting times.
			ltct := r.Child("latestTokenConsumptionTime")
			r.Remove("latestTokenConsumptionTime")
			var kids []*Node
			for _, c := range r.Children {
				if c.Local == "earliestReportingTime" {
					kids = append(kids, ltct)
				}
				kids = append(kids, c)
			}
			r.Children = kids
		}, "XBS-9.2.3-ORDER", SevError},
		{"failure with body", ok2, twoPass, func(r *Node) { r.SetAttr("status", "AccessDenied") }, "XBS-9.2.3-ERROR-EMPTY", SevError},
		{"status outside the 22", ok2, twoPass, func(r *Node) { r.SetAttr("status", "MalformedMeteringReport") }, "XBS-9.2.3-STATUS-ENUM", SevError},
		{"status unknown", ok2, twoPass, func(r *Node) { r.SetAttr("status", "Fine") }, "XBS-9.2.3-STATUS-ENUM", SevError},
		{"no status", ok2, twoPass, func(r *Node) { sceDropAttr(r, "status") }, "XBS-9.2.3-ROOT", SevError},
		{"foreign namespace", ok2, twoPass, func(r *Node) {
			r.Attrs[0].Value = "urn:example:tokens"
		}, "XBS-9.2.3-ROOT", SevError},
		{"tokenDeliveryID not NCName", ok2, twoPass, set("tokenDeliveryID", "0001 tdid"), "XBS-9.2.3-TDID-XSID", SevWarning},
		{"tokenQuantity not integer", ok2, twoPass, set("tokenQuantity", "ten"), "XBS-9.2.3-QTY", SevError},
		{"tokenQuantity fraction", ok2, twoPass, set("tokenQuantity", "1.5"), "XBS-9.2.3-QTY", SevError},
		{"reporting times without URL", ok2, twoPass, func(r *Node) { r.Remove("tokenReportingURL") }, "XBS-9.2.3-REPORT-FIELDS-NEED-URL", SevWarning},
		{"empty window", ok2, twoPass, set("earliestReportingTime", "2011-07-08T00:00:00Z"), "XBS-9.2.3-REPORT-WINDOW", SevWarning},
		{"consumption ends before reporting", ok2, twoPass, set("latestTokenConsumptionTime", "2011-07-07T00:00:00Z"), "XBS-9.2.3-LTCT-AFTER-WINDOW", SevWarning},
		{"Movable with content", tokTDROpts{nonce: tokReqNonce, ext: El("extensions", El("extension", A("xsi:type", "roap:Movable"), El("x", "1")))}, twoPass, nil, "XBS-9.2.3-EXT-MOVABLE", SevWarning},
		{"DomainID twice", tokTDROpts{nonce: tokReqNonce, ext: El("extensions", El("extension", A("xsi:type", "xbs:DomainID"), El("domainID", "a"), El("domainID", "b")))}, twoPass, nil, "XBS-9.2.3-EXT-DOMAINID", SevWarning},
		{"DomainID empty", tokTDROpts{nonce: tokReqNonce, ext: El("extensions", El("extension", A("xsi:type", "roap:DomainID")))}, twoPass, nil, "XBS-9.2.3-EXT-DOMAINID", SevWarning},
		{"DomainID not NCName", tokTDROpts{nonce: tokReqNonce, ext: El("extensions", El("extension", A("xsi:type", "roap:DomainID"), El("domainID", "7 dwarfs")))}, twoPass, nil, "XBS-9.2.3-EXT-DOMAINID", SevWarning},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := tokBuildTDR(t, c.opts)
			if c.mutate != nil {
				c.mutate(r)
			}
			m := sceDecodeTree(r, c.hint)
			if m.Kind != tokTDR {
				t.Fatalf("kind %s:%s", m.Kind, sceFindingsString(m))
			}
			sceWant(t, m, c.rule, c.sev)
		})
	}

	t.Run("OCSP finding names the excuse", func(t *testing.T) {
		m := sceDecodeTree(tokBuildTDR(t, tokTDROpts{}), pushed)
		f := tokFinding(m, "XBS-9.2.3-OCSP")
		if f == nil || !strings.Contains(f.Message, "NoOCSPResponse") {
			t.Errorf("OCSP finding %+v", f)
		}
		sceWantNot(t, m, "XBS-9.2.3-PRESENCE")
	})
	t.Run("OCSP not required in 2-pass", func(t *testing.T) {
		m := sceDecodeTree(tokBuildTDR(t, tokTDROpts{nonce: tokReqNonce}), twoPass)
		sceClean(t, m)
		sceWantNot(t, m, "XBS-9.2.3-OCSP")
	})
	t.Run("quantity effects", func(t *testing.T) {
		for v, effect := range map[string]string{"-2": "removes", "0": "acknowledges", "+7": "adds"} {
			r := tokBuildTDR(t, ok2)
			r.Child("tokenQuantity").SetText(v)
			m := sceDecodeTree(r, twoPass)
			sceClean(t, m)
			if m.ID("tokenQuantity") != v {
				t.Errorf("tokenQuantity ID %q, want %q", m.ID("tokenQuantity"), v)
			}
			if f := tokFinding(m, "XBS-9.2.3-QTY"); f == nil || !strings.Contains(f.Message, effect) {
				t.Errorf("quantity %s: %+v", v, f)
			}
		}
	})
	t.Run("no status in another message", func(t *testing.T) {
		// The token statuses are scoped: the RDP response must not use them.
		m := sceDecodeTree(sceBuildLeaveResponse("NoTokenConsumptionReport", nil), Hint{})
		sceWant(t, m, "XBS-9.2.3-TOKEN-STATUS-SCOPE", SevError)
	})
}

func tokDeviceMsg(t *testing.T, name string, kids ...*Node) *Node {
	t.Helper()
	items := []any{NS("roap", NSROAP),
		El("deviceID", sceKeyID(tokDevHash)), El("riID", sceKeyID(tokRIHash)),
		El("nonce", tokReqNonce), El("time", "2011-07-05T10:00:00Z")}
	for _, k := range kids {
		items = append(items, k)
	}
	return tokSign(t, El("roap:"+name, items...))
}

func TestTokenRequest(t *testing.T) {
	r := tokDeviceMsg(t, "tokenRequest", El("tokenDeliveryID", "tdid-0001"))
	m := sceDecodeTree(r, Hint{Direction: DirRequest})
	if m.Family != FamilyToken || m.Kind != "tokenRequest" || m.Role != RoleDevice {
		t.Fatalf("got %s/%s %q:%s", m.Family, m.Kind, m.Role, sceFindingsString(m))
	}
	sceClean(t, m)
	for k, v := range map[string]string{"deviceID": tokDevHash, "riID": tokRIHash, "nonce": tokReqNonce, "tokenDeliveryID": "tdid-0001"} {
		if m.ID(k) != v {
			t.Errorf("ID %s = %q, want %q", k, m.ID(k), v)
		}
	}
	if !bytes.Equal(m.SignedBytes(), r.BytesWithout("signature")) {
		t.Error("signature span wrong")
	}

	// The real schema is not public: other children are only noted, a missing field warns.
	r = tokDeviceMsg(t, "TokenRequest", El("serviceID", "news-24"))
	m = sceDecodeTree(r, Hint{})
	if m.Kind != "tokenRequest" {
		t.Fatalf("kind %s", m.Kind)
	}
	sceClean(t, m)
	sceWant(t, m, "XBS-TOKREQ-SHAPE", SevInfo)
	sceWant(t, m, "DEC-ROOT-CASE", SevInfo)

	r.Remove("nonce")
	m = sceDecodeTree(r, Hint{})
	sceWant(t, m, "XBS-TOKREQ-SHAPE", SevWarning)
}

func TestTokenConsumptionReport(t *testing.T) {
	r := tokDeviceMsg(t, "tokenConsumptionReport", El("tokenDeliveryID", "tdid-0001"), El("tokensConsumed", "4"))
	m := sceDecodeTree(r, Hint{})
	if m.Family != FamilyToken || m.Kind != "tokenConsumptionReport" || m.Role != RoleDevice {
		t.Fatalf("got %s/%s %q:%s", m.Family, m.Kind, m.Role, sceFindingsString(m))
	}
	sceClean(t, m)
	if m.ID("tokenDeliveryID") != "tdid-0001" || m.ID("nonce") != tokReqNonce || m.ID("tokensConsumed") != "4" {
		t.Errorf("ids %v", m.IDs)
	}
	for _, c := range []struct {
		name string
		kids []*Node
		rule string
		sev  Severity
	}{
		{"no tokenDeliveryID", []*Node{El("tokensConsumed", "4")}, "XBS-TCR-SHAPE", SevWarning},
		{"no tokensConsumed", []*Node{El("tokenDeliveryID", "tdid-0001")}, "XBS-TCR-SHAPE", SevWarning},
		{"negative consumption", []*Node{El("tokenDeliveryID", "tdid-0001"), El("tokensConsumed", "-1")}, "XBS-TCR-SHAPE", SevWarning},
		{"not an integer", []*Node{El("tokenDeliveryID", "tdid-0001"), El("tokensConsumed", "four")}, "DEC-VALUE-INTEGER", SevError},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := sceDecodeTree(tokDeviceMsg(t, "tokenConsumptionReport", c.kids...), Hint{})
			sceWant(t, m, c.rule, c.sev)
		})
	}
}
