package decode

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const rtLeaveTriggerID = "ld-0001"

// rtTrigger builds a roapTrigger of the given kind with the common fields (riID, riAlias,
// nonce, roapURL) followed by extra.
func rtTrigger(t testing.TB, kind string, extra ...any) *Node {
	_, ri := rtIDs(t)
	items := []any{A("id", "trg-"+kind), rtIdentifier("riID", ri.keyID), El("riAlias", "Example RI"), El("nonce", rtTrigNonce), El("roapURL", rtRIURL)}
	return El("roap:roapTrigger", NS("roap", NSROAP), A("version", "1.0"), El(kind, append(items, extra...)...))
}

// rtSignedLeaveTrigger builds a leaveDomain trigger signed as Symbian expects (roap-core §6.4):
// ds:SignedInfo referencing the leaveDomain element by id with its SHA-1 digest, an HMAC-SHA1
// SignatureValue, and encKey with the MAC key wrapped (kw-aes128) under the Domain Key.
func rtSignedLeaveTrigger(t testing.TB) *Node {
	_, ri := rtIDs(t)
	body := El("leaveDomain", A("id", rtLeaveTriggerID), rtIdentifier("riID", ri.keyID), El("nonce", rtTrigNonce),
		El("roapURL", rtRIURL), El("domainID", rtDomain))
	digest := sha1.Sum(body.Bytes())
	sig := El("signature",
		El("ds:SignedInfo", NS("ds", NSDS),
			El("ds:CanonicalizationMethod", A("Algorithm", AlgC14N)),
			El("ds:SignatureMethod", A("Algorithm", AlgHMAC1)),
			El("ds:Reference", A("URI", "#"+rtLeaveTriggerID),
				El("ds:DigestMethod", A("Algorithm", AlgSHA1)),
				El("ds:DigestValue", base64.StdEncoding.EncodeToString(digest[:])))),
		El("ds:SignatureValue", NS("ds", NSDS), rtB64("trigger hmac", 20)))
	enc := El("encKey", NS("xenc", NSXENC), A("Id", "K_MAC"),
		El("xenc:EncryptionMethod", A("Algorithm", AlgKWAES)),
		El("ds:KeyInfo", NS("ds", NSDS), El("roap:domainID", rtDomain)),
		El("xenc:CipherData", El("xenc:CipherValue", rtB64("wrapped mac key", 24))))
	return El("roap:roapTrigger", NS("roap", NSROAP), A("version", "1.0"), body, sig, enc)
}

// rtTrigSpan checks that the signature span cuts exactly the trigger's top-level <signature>.
func rtTrigSpan(t *testing.T, m *Message, root *Node) {
	t.Helper()
	if m.Signature == nil {
		t.Fatal("no signature span recorded")
	}
	got := m.Raw[m.Signature.Start:m.Signature.End]
	if want := Canonical(root.Child("signature"), nil); !bytes.Equal(got, want) {
		t.Errorf("signature span cuts %q; want %q", clip(string(got), 80), clip(string(want), 80))
	}
	if !bytes.HasPrefix(got, []byte("<signature>")) || !bytes.HasSuffix(got, []byte("</signature>")) {
		t.Errorf("signature span %q is not a whole <signature> element", clip(string(got), 80))
	}
	if !bytes.Equal(m.SignedBytes(), root.BytesWithout("signature")) {
		t.Error("SignedBytes differs from the trigger without its signature")
	}
}

func TestTriggerCanonical(t *testing.T) {
	dev, ri := rtIDs(t)
	common := map[string]string{"riID": ri.keyID, "nonce": rtTrigNonce, "roapURL": rtRIURL}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range common {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	cases := []struct {
		name    string
		build   func(testing.TB) *Node
		hint    Hint
		variant string
		ids     map[string]string
		signed  bool
		rules   []string
	}{
		{"registrationRequest", func(t testing.TB) *Node { return rtTrigger(t, "registrationRequest") }, Hint{ContentType: MIMETrig}, "registrationRequest",
			with(map[string]string{"triggerID": "trg-registrationRequest"}), false, nil},
		{"roAcquisition two groups", func(t testing.TB) *Node {
			return rtTrigger(t, "roAcquisition", El("domainID", rtDomain), El("domainAlias", "Family"),
				El("roID", "ro-0001"), El("roAlias", "Song"), El("contentID", "cid:song@ri.example.com"), El("contentID", "cid:cover@ri.example.com"),
				El("roID", "ro-0002"), El("contentID", "cid:video@ri.example.com"))
		}, Hint{ContentType: MIMETrig}, "roAcquisition",
			with(map[string]string{"roIDs": "ro-0001,ro-0002", "contentIDs": "cid:song@ri.example.com,cid:cover@ri.example.com,cid:video@ri.example.com", "domainID": rtDomain}), false, nil},
		{"joinDomain", func(t testing.TB) *Node {
			return rtTrigger(t, "joinDomain", El("domainID", rtDomain), El("domainAlias", "Family"))
		}, Hint{}, "joinDomain",
			with(map[string]string{"domainID": rtDomain, "triggerID": "trg-joinDomain"}), false, nil},
		{"leaveDomain", func(t testing.TB) *Node { return rtTrigger(t, "leaveDomain", El("domainID", rtDomain)) }, Hint{}, "leaveDomain",
			with(map[string]string{"domainID": rtDomain}), false, []string{}},
		{"extended leaveDomain for two devices", func(t testing.TB) *Node {
			n := rtTrigger(t, "extendedTrigger", El("domainID", rtDomain), rtIdentifier("deviceID", dev.keyID), rtIdentifier("deviceID", rtB64("second device", 20)))
			n.Child("extendedTrigger").SetAttr("type", "leaveDomain")
			n.SetAttr("version", "2.1")
			return n
		}, Hint{ContentType: MIMETrig}, "extendedTrigger",
			with(map[string]string{"triggerType": "leaveDomain", "domainID": rtDomain, "deviceIDs": dev.keyID + "," + rtB64("second device", 20), "triggerID": "trg-extendedTrigger"}), false, nil},
		{"extended meteringReport", func(t testing.TB) *Node {
			n := rtTrigger(t, "extendedTrigger")
			n.Child("extendedTrigger").SetAttr("type", "meteringReport")
			return n
		}, Hint{}, "extendedTrigger", with(map[string]string{"triggerType": "meteringReport"}), false, nil},
		{"signed leaveDomain", rtSignedLeaveTrigger, Hint{ContentType: MIMETrig}, "leaveDomain",
			with(map[string]string{"domainID": rtDomain, "triggerID": rtLeaveTriggerID}), true, []string{"ROAP-LD-TRIGGER-SIG"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := c.build(t)
			m := Decode(root.Bytes(), c.hint)
			if m.Family != FamilyTrigger || m.Kind != "roapTrigger" || m.Variant != c.variant || m.Role != RoleRI {
				t.Fatalf("got %s/%s/%q role %q; want roap-trigger/roapTrigger/%q role ri%s", m.Family, m.Kind, m.Variant, m.Role, c.variant, rtFindings(m))
			}
			rtNoneWorse(t, m, SevWarning)
			for k, v := range c.ids {
				if got := m.ID(k); got != v {
					t.Errorf("ID %s = %q; want %q", k, got, v)
				}
			}
			for _, r := range c.rules {
				rtWant(t, m, r, SevInfo)
			}
			if c.signed {
				rtTrigSpan(t, m, root)
			} else {
				rtWantNot(t, m, "ROAP-LD-TRIGGER-SIG")
				if m.Signature != nil {
					t.Errorf("unsigned trigger has a signature span %+v", *m.Signature)
				}
			}
		})
	}
}

// rtOnBody applies fn to the trigger element of a roapTrigger.
func rtOnBody(fn func(body *Node)) func(testing.TB, *Node) {
	return func(t testing.TB, n *Node) {
		for _, c := range n.Elements() {
			if roapTriggerKinds[strings.ToLower(c.Local)] != "" {
				fn(c)
				return
			}
		}
		t.Fatal("no trigger element")
	}
}

func TestTriggerBroken(t *testing.T) {
	join := func(t testing.TB) *Node { return rtTrigger(t, "joinDomain", El("domainID", rtDomain)) }
	leave := func(t testing.TB) *Node { return rtTrigger(t, "leaveDomain", El("domainID", rtDomain)) }
	acq := func(t testing.TB) *Node {
		return rtTrigger(t, "roAcquisition", El("roID", "ro-0001"), El("roAlias", "Song"), El("contentID", "cid:song@ri.example.com"))
	}
	ext := func(typ string) func(testing.TB) *Node {
		return func(t testing.TB) *Node {
			n := rtTrigger(t, "extendedTrigger")
			n.Child("extendedTrigger").SetAttr("type", typ)
			return n
		}
	}
	rtRunMutations(t, []rtMutation{
		{name: "joinDomain without domainID", build: join, mutate: rtDrop("joinDomain/domainID"), rule: "ROAP-TRIGGER-DOMAINID", sev: SevError},
		{name: "leaveDomain without domainID", build: leave, mutate: rtDrop("leaveDomain/domainID"), rule: "ROAP-TRIGGER-DOMAINID", sev: SevError},
		{name: "extended leaveDomain without domainID", build: ext("leaveDomain"), rule: "ROAP-TRIGGER-DOMAINID", sev: SevWarning},
		{name: "extended meteringReport needs no domainID", build: ext("meteringReport"), absent: []string{"ROAP-TRIGGER-DOMAINID", "ROAP-TRIGGER-EXT-TYPE"}},
		{name: "extendedTrigger without type", build: ext("x"), mutate: rtOnBody(func(b *Node) { b.Attrs = rtWithoutAttr(b.Attrs, "type") }), rule: "ROAP-TRIGGER-SHAPE", sev: SevError},
		{name: "extendedTrigger unknown type", build: ext("tokenAcquisition"), rule: "ROAP-TRIGGER-EXT-TYPE", sev: SevInfo},
		{name: "extendedTrigger unknown field noted", build: ext("identificationRequest"), mutate: rtOnBody(func(b *Node) { rtInsertAfter(b, "roapURL", El("proxyInfo", "x")) }), rule: "ROAP-TRIGGER-SHAPE", sev: SevInfo},
		{name: "joinDomain without riID", build: join, mutate: rtDrop("joinDomain/riID"), rule: "ROAP-TRIGGER-SHAPE", sev: SevError},
		{name: "registration without roapURL", build: func(t testing.TB) *Node { return rtTrigger(t, "registrationRequest") }, mutate: rtDrop("registrationRequest/roapURL"), rule: "ROAP-TRIGGER-SHAPE", sev: SevError},
		{name: "roAcquisition without roID", build: func(t testing.TB) *Node { return rtTrigger(t, "roAcquisition") }, rule: "ROAP-TRIGGER-SHAPE", sev: SevError},
		{name: "joinDomain with roID", build: join, mutate: rtOnBody(func(b *Node) { rtInsertAfter(b, "domainID", El("roID", "ro-1")) }), rule: "ROAP-TRIGGER-SHAPE", sev: SevError},
		{name: "two trigger elements", build: join, mutate: func(_ testing.TB, n *Node) { rtInsertAfter(n, "joinDomain", El("leaveDomain")) }, rule: "ROAP-TRIGGER-SHAPE", sev: SevError},
		{name: "unknown root child", build: join, mutate: func(_ testing.TB, n *Node) { rtInsertAfter(n, "joinDomain", El("riURL", rtRIURL)) }, rule: "ROAP-TRIGGER-SHAPE", sev: SevError},
		{name: "no version", build: join, mutate: func(_ testing.TB, n *Node) { n.Attrs = rtWithoutAttr(n.Attrs, "version") }, rule: "ROAP-TRIGGER-VERSION", sev: SevWarning},
		{name: "unknown version", build: join, mutate: func(_ testing.TB, n *Node) { n.SetAttr("version", "3.0") }, rule: "ROAP-TRIGGER-VERSION", sev: SevWarning},
		{name: "version 1.1 known", build: join, mutate: func(_ testing.TB, n *Node) { n.SetAttr("version", "1.1") }, absent: []string{"ROAP-TRIGGER-VERSION"}},
		{name: "nonce not base64", build: join, mutate: rtSet("joinDomain/nonce", "sdfknjvfda438790fdjkl4r"), rule: "DEC-VALUE-BASE64", sev: SevError},
		{name: "roapURL not a URI", build: join, mutate: rtSet("joinDomain/roapURL", "http://ri.example.com/ro cgi"), rule: "DEC-VALUE-URI", sev: SevError},
		{name: "id not an NCName", build: join, mutate: rtOnBody(func(b *Node) { b.SetAttr("id", "1abc") }), rule: "DEC-VALUE-NCNAME", sev: SevWarning},
		{name: "domainID without generation", build: join, mutate: rtSet("joinDomain/domainID", "Domain-XYZ"), rule: "ROAP-DOMAINID-FORM", sev: SevWarning},
		{name: "domainID before roapURL is only a note", build: join, mutate: rtOnBody(func(b *Node) { rtMove(b, "domainID", "nonce") }), rule: "ROAP-TRIGGER-ORDER", sev: SevInfo, absent: []string{"ROAP-TRIGGER-SHAPE", "ROAP-TRIGGER-DOMAINID"}},
		{name: "roAlias before roID", build: acq, mutate: rtOnBody(func(b *Node) { rtMove(b, "roAlias", "roapURL") }), rule: "ROAP-TRIGGER-ORDER", sev: SevInfo, absent: []string{"ROAP-TRIGGER-SHAPE"}},
		{name: "riID last", build: acq, mutate: rtOnBody(func(b *Node) { rtMove(b, "riID", "contentID") }), rule: "ROAP-TRIGGER-ORDER", sev: SevInfo, absent: []string{"ROAP-TRIGGER-SHAPE"}},
		{name: "group order is free", build: func(t testing.TB) *Node {
			return rtTrigger(t, "roAcquisition", El("roID", "ro-1"), El("contentID", "cid:a"), El("roID", "ro-2"), El("roAlias", "B"), El("contentID", "cid:b"))
		}, absent: []string{"ROAP-TRIGGER-ORDER", "ROAP-TRIGGER-SHAPE"}},
		{name: "deviceID anywhere", build: join, mutate: rtOnBody(func(b *Node) { rtInsertAfter(b, "riID", rtIdentifier("deviceID", rtB64("dev", 20))) }), absent: []string{"ROAP-TRIGGER-ORDER", "ROAP-TRIGGER-SHAPE"}},
		{name: "trigger element case", build: join, mutate: rtOnBody(func(b *Node) { b.Local = "JoinDomain" }), rule: "DEC-CHILD-CASE", sev: SevInfo, absent: []string{"ROAP-TRIGGER-DOMAINID", "ROAP-TRIGGER-SHAPE"}},
		{name: "served as PDU", build: join, hint: Hint{ContentType: MIMEPDU}, rule: "ROAP-CONTENT-TYPE", sev: SevWarning},
		{name: "served as trigger+xml with charset", build: join, hint: Hint{ContentType: MIMETrig + "; charset=utf-8"}, absent: []string{"ROAP-CONTENT-TYPE"}},
		{name: "plain-text signature", build: join, mutate: func(_ testing.TB, n *Node) { rtInsertAfter(n, "joinDomain", El("signature", "SomeSignature")) }, rule: "ROAP-TRIGGER-SIG", sev: SevWarning},
		{name: "signature before trigger element", build: rtSignedLeaveTrigger, mutate: func(_ testing.TB, n *Node) { rtMove(n, "leaveDomain", "encKey") }, rule: "ROAP-TRIGGER-ORDER", sev: SevInfo, absent: []string{"ROAP-TRIGGER-SHAPE"}},
		{name: "signed without encKey", build: rtSignedLeaveTrigger, mutate: rtDrop("encKey"), rule: "ROAP-TRIGGER-SIG", sev: SevWarning},
		{name: "encKey without signature", build: rtSignedLeaveTrigger, mutate: rtDrop("signature"), rule: "ROAP-TRIGGER-SIG", sev: SevWarning, absent: []string{"ROAP-LD-TRIGGER-SIG"}},
		{name: "Reference to another element", build: rtSignedLeaveTrigger, mutate: func(_ testing.TB, n *Node) {
			n.Find("signature/SignedInfo/Reference").SetAttr("URI", "#other")
		}, rule: "ROAP-TRIGGER-SIG", sev: SevWarning},
		{name: "signed trigger element without id", build: rtSignedLeaveTrigger, mutate: rtOnBody(func(b *Node) { b.Attrs = rtWithoutAttr(b.Attrs, "id") }), rule: "ROAP-TRIGGER-SIG", sev: SevWarning},
		{name: "signature without SignatureValue", build: rtSignedLeaveTrigger, mutate: rtDrop("signature/SignatureValue"), rule: "ROAP-TRIGGER-SIG", sev: SevWarning},
		{name: "DigestValue not SHA-1 sized", build: rtSignedLeaveTrigger, mutate: rtSet("signature/SignedInfo/Reference/DigestValue", rtB64("d", 32)), rule: "ROAP-TRIGGER-SIG", sev: SevWarning},
		{name: "leaveDomain MAC key wrapped with RSA-KEM", build: rtSignedLeaveTrigger, mutate: func(_ testing.TB, n *Node) {
			n.Find("encKey/EncryptionMethod").Attrs = []Attr{{Local: "Algorithm", Value: AlgKEM}}
		}, rule: "ROAP-TRIGGER-SIG", sev: SevWarning},
		{name: "encKey CipherValue not base64", build: rtSignedLeaveTrigger, mutate: rtSet("encKey/CipherData/CipherValue", "**"), rule: "DEC-VALUE-BASE64", sev: SevError},
	})
}

func TestTriggerEmpty(t *testing.T) {
	m := Decode([]byte(`<roap:roapTrigger xmlns:roap="urn:oma:bac:dldrm:roap-1.0" version="1.0"></roap:roapTrigger>`), Hint{})
	if m.Kind != "roapTrigger" || m.Variant != "" || m.Family != FamilyTrigger {
		t.Fatalf("got %s/%s/%q", m.Family, m.Kind, m.Variant)
	}
	rtWant(t, m, "ROAP-TRIGGER-SHAPE", SevError)
}

// rtStripNS turns a built tree into what the WBXML decoder hands to dispatch: local names only,
// no namespace declarations, Space "" everywhere (xsi:type keeps its prefix).
func rtStripNS(n *Node) {
	n.Prefix, n.Space = "", ""
	var attrs []Attr
	for _, a := range n.Attrs {
		if a.IsNS {
			continue
		}
		a.Space = ""
		attrs = append(attrs, a)
	}
	n.Attrs = attrs
	for _, c := range n.Children {
		if c.Kind == ElementNode {
			rtStripNS(c)
		}
	}
}

// TestTriggerWithoutNamespaces decodes triggers as the WBXML path delivers them: first a tree
// stripped of namespaces handed straight to dispatch, then real WBXML bytes through Decode.
func TestTriggerWithoutNamespaces(t *testing.T) {
	dev, ri := rtIDs(t)
	t.Run("stripped tree", func(t *testing.T) {
		root := rtSignedLeaveTrigger(t)
		root.Bytes() // resolve parents
		rtStripNS(root)
		ext := rtTrigger(t, "extendedTrigger", El("domainID", rtDomain), rtIdentifier("deviceID", dev.keyID))
		ext.Child("extendedTrigger").SetAttr("type", "leaveDomain")
		ext.Bytes()
		rtStripNS(ext)
		for _, c := range []struct {
			root    *Node
			variant string
		}{{root, "leaveDomain"}, {ext, "extendedTrigger"}} {
			m := &Message{Family: FamilyUnknown, Kind: "unknown", IDs: map[string]string{}}
			dispatch(&state{lim: DefaultLimits, hint: Hint{ContentType: MIMEWBXML}}, m, c.root)
			if m.Kind != "roapTrigger" || m.Variant != c.variant || m.Family != FamilyTrigger {
				t.Fatalf("got %s/%s/%q; want roapTrigger %s%s", m.Family, m.Kind, m.Variant, c.variant, rtFindings(m))
			}
			for _, f := range m.Findings {
				if f.Severity == SevError || (f.Severity == SevWarning && f.Rule != RuleRootNS.ID) {
					t.Errorf("unexpected %s %s: %s", f.Severity, f.Rule, f.Message)
				}
			}
			if m.ID("riID") != ri.keyID || m.ID("domainID") != rtDomain {
				t.Errorf("IDs %v", m.IDs)
			}
		}
	})
	t.Run("wbxml", func(t *testing.T) {
		root := rtSignedLeaveTrigger(t)
		root.Bytes()
		wb, err := EncodeWBXMLTrigger(root)
		if err != nil {
			t.Fatal(err)
		}
		m := Decode(wb, Hint{ContentType: MIMEWBXML})
		if m.Kind != "roapTrigger" || m.Variant != "leaveDomain" || m.Family != FamilyTrigger {
			t.Fatalf("got %s/%s/%q%s", m.Family, m.Kind, m.Variant, rtFindings(m))
		}
		rtNoneWorse(t, m, SevError)
		rtWant(t, m, "ROAP-LD-TRIGGER-SIG", SevInfo)
		rtWantNot(t, m, "ROAP-TRIGGER-SIG")
		for k, v := range map[string]string{"riID": ri.keyID, "nonce": rtTrigNonce, "domainID": rtDomain, "triggerID": rtLeaveTriggerID, "roapURL": rtRIURL} {
			if got := m.ID(k); got != v {
				t.Errorf("ID %s = %q; want %q", k, got, v)
			}
		}
	})
}

func TestTriggerVectors(t *testing.T) {
	if _, err := os.Stat(rtVectorsDir); err != nil {
		t.Skipf("vectors folder %s not available: %v", rtVectorsDir, err)
	}
	files, _ := filepath.Glob(filepath.Join(rtVectorsDir, "trigger-*.xml"))
	more, _ := filepath.Glob(filepath.Join(rtVectorsDir, "sce-synthetic-roap-*trigger*.xml"))
	files = append(files, more...)
	if len(files) == 0 {
		t.Skip("no trigger vectors")
	}
	coremediaRI := "I94/ovDhizE5m/K6t5f1holSdLM="
	expect := map[string]struct {
		ids     map[string]string
		rules   []string
		sigText string // the exact <signature> element the span must cut ("" = unsigned)
		clean   bool   // no warnings or errors
	}{
		"trigger-registrationRequest.coremedia-iop.xml": {ids: map[string]string{"riID": coremediaRI, "nonce": "FL2MM70k5OthJZrMte6r", "triggerID": "id1",
			"roapURL": "http://192.116.217.184:8080/iop-server/roap.cm;jsessionid=88C45AEB82C2755A641526A19B9050A7"}, clean: true},
		"trigger-roAcquisition.coremedia-iop.xml": {ids: map[string]string{"riID": coremediaRI, "nonce": "g5VsnV4L7qZzBMnH0idD",
			"roIDs": "offer6165.1.PphdCI0gysdL58zb_mid", "contentIDs": "cid:cid6165_mid"}, clean: true},
		"trigger-joinDomain.spec-style-example.xml": {ids: map[string]string{"domainID": "Domain-XYZ-001", "triggerID": "de32r23r4", "riID": "aXENc+Um/9/NvmYKiHDLaErK0fk="},
			rules: []string{"ROAP-TRIGGER-SIG", "DEC-XSI-UNDECLARED"}, sigText: "<signature>SomeSignature</signature>"},
		"trigger-leaveDomain.spec-style-example.xml": {ids: map[string]string{"domainID": "Domain-XYZ-001", "nonce": "sdfknjvfda438790fdjkl4rq"},
			rules: []string{"ROAP-TRIGGER-SIG", "ROAP-LD-TRIGGER-SIG"}, sigText: "<signature>SomeSignature</signature>"},
		"sce-synthetic-roap-leaveDomain-trigger.xml": {ids: map[string]string{"nonce": "r6OqQRJ5dUF6cIs3VoMfqw==", "domainID": "ACMEUSERDOM42001", "triggerID": "ld-0001"}},
	}
	for _, p := range files {
		name := filepath.Base(p)
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m := Decode(body, Hint{ContentType: MIMETrig})
			_, variant := rtVectorKind(name)
			if m.Family != FamilyTrigger || m.Kind != "roapTrigger" || m.Variant != variant || m.Role != RoleRI {
				t.Fatalf("got %s/%s/%q role %q; want roap-trigger/roapTrigger/%q%s", m.Family, m.Kind, m.Variant, m.Role, variant, rtFindings(m))
			}
			rtNoneWorse(t, m, SevError)
			e, ok := expect[name]
			if !ok {
				return
			}
			for k, v := range e.ids {
				if got := m.ID(k); got != v {
					t.Errorf("ID %s = %q; want %q", k, got, v)
				}
			}
			for _, r := range e.rules {
				rtWant(t, m, r, "")
			}
			if e.clean {
				rtNoneWorse(t, m, SevWarning)
			}
			switch {
			case e.sigText == "" && m.Signature != nil:
				t.Errorf("unsigned trigger has a signature span %+v", *m.Signature)
			case e.sigText != "" && m.Signature == nil:
				t.Error("no signature span")
			case e.sigText != "":
				if got := string(body[m.Signature.Start:m.Signature.End]); got != e.sigText {
					t.Errorf("signature span cuts %q; want %q", got, e.sigText)
				}
			}
		})
	}
}
