package decode

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// decodeWBXMLDirect runs the WBXML decoder without Decode's recover, so a panic fails the test
// instead of turning into a finding.
func decodeWBXMLDirect(body []byte, lim Limits) *Message {
	m := &Message{Family: FamilyUnknown, Kind: "unknown", Raw: body, ContentType: MIMEWBXML, IDs: map[string]string{}}
	decodeWBXMLTrigger(&state{lim: lim, hint: Hint{ContentType: MIMEWBXML}}, m, body)
	return m
}

// treeDiff describes the first difference between two trees by local names, prefixes,
// attributes (name, value, declaration or not) and text; "" when they match.
func treeDiff(a, b *Node, path string) string {
	if (a == nil) != (b == nil) {
		return fmt.Sprintf("%s: one side is nil", path)
	}
	if a == nil {
		return ""
	}
	if a.Kind != b.Kind {
		return fmt.Sprintf("%s: kind %d vs %d", path, a.Kind, b.Kind)
	}
	if a.Kind != ElementNode {
		if a.Text != b.Text {
			return fmt.Sprintf("%s: text %q vs %q", path, a.Text, b.Text)
		}
		return ""
	}
	path += "/" + a.QName()
	if a.Prefix != b.Prefix || a.Local != b.Local {
		return fmt.Sprintf("%s: name vs %s", path, b.QName())
	}
	if len(a.Attrs) != len(b.Attrs) {
		return fmt.Sprintf("%s: %d attributes vs %d (%v vs %v)", path, len(a.Attrs), len(b.Attrs), a.Attrs, b.Attrs)
	}
	for i := range a.Attrs {
		x, y := a.Attrs[i], b.Attrs[i]
		if x.Prefix != y.Prefix || x.Local != y.Local || x.Value != y.Value || x.IsNS != y.IsNS {
			return fmt.Sprintf("%s: attribute %d: %+v vs %+v", path, i, x, y)
		}
	}
	if len(a.Children) != len(b.Children) {
		return fmt.Sprintf("%s: %d children vs %d", path, len(a.Children), len(b.Children))
	}
	for i := range a.Children {
		if d := treeDiff(a.Children[i], b.Children[i], path); d != "" {
			return d
		}
	}
	return ""
}

func findingsOf(m *Message, id string) []Finding {
	var out []Finding
	for _, f := range m.Findings {
		if f.Rule == id {
			out = append(out, f)
		}
	}
	return out
}

func triggerVectors(t testing.TB) map[string][]byte {
	dir := filepath.Join("..", "..", "shared", "vectors")
	files, _ := filepath.Glob(filepath.Join(dir, "trigger-*.xml"))
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseXML(b, DefaultLimits); err != nil {
			continue // only well-formed triggers can be encoded
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// builtTriggers are canonical XML triggers for what the vectors lack: a signed leaveDomain
// trigger (ds:SignedInfo, encKey with xenc elements) and a 2.1 extendedTrigger.
func builtTriggers() map[string][]byte {
	riID := func() *Node {
		return El("riID", El("keyIdentifier", NS("xsi", NSXSI), A("algorithm", AlgSHA1), A("xsi:type", "roap:X509SPKIHash"),
			El("hash", "aXENc+Um/9/NvmYKiHDLaErK0fk=")))
	}
	signed := El("roap:roapTrigger", NS("roap", NSROAP), A("version", "1.0"),
		El("leaveDomain", A("id", "ld1"), riID(), El("nonce", "c2RmZ2hqa2wxMjM0NTY3OA=="),
			El("roapURL", "http://ri.example.com/roap"), El("domainID", "Domain-XYZ-001")),
		El("signature",
			El("ds:SignedInfo", NS("ds", NSDS),
				El("ds:CanonicalizationMethod", A("Algorithm", AlgC14N)),
				El("ds:SignatureMethod", A("Algorithm", AlgHMAC1)),
				El("ds:Reference", A("URI", "#ld1"),
					El("ds:Transforms", El("ds:Transform", A("Algorithm", AlgC14N))),
					El("ds:DigestMethod", A("Algorithm", AlgSHA1)),
					El("ds:DigestValue", "3q2+7wAAAAAAAAAAAAAAAAAAAAA="))),
			El("ds:SignatureValue", NS("ds", NSDS), "q83vASNFZ4mrze8BI0VniavN7wE=")),
		El("encKey", A("Id", "k1"),
			El("xenc:EncryptionMethod", NS("xenc", NSXENC), A("Algorithm", AlgKWAES)),
			El("ds:KeyInfo", NS("ds", NSDS), El("ds:RetrievalMethod", A("URI", "#Domain-XYZ-001"))),
			El("xenc:CipherData", NS("xenc", NSXENC), El("xenc:CipherValue", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"))))
	extended := El("roap:roapTrigger", NS("roap", NSROAP), A("version", "2.1"),
		El("extendedTrigger", A("id", "et1"), A("type", "meteringReport"), riID(), El("nonce", "c2RmZ2hqa2wxMjM0NTY3OA=="),
			El("roapURL", "http://ri.example.com/metering"), El("domainID", "Domain-XYZ-001")))
	return map[string][]byte{"built-signed-leaveDomain": signed.Bytes(), "built-extendedTrigger": extended.Bytes()}
}

func TestWBXMLRoundTripVectors(t *testing.T) {
	vecs := triggerVectors(t)
	if len(vecs) == 0 {
		t.Log("no well-formed trigger vectors in ../../shared/vectors; built triggers only")
	}
	for name, b := range builtTriggers() {
		vecs[name] = b
	}
	for name, xmlBody := range vecs {
		t.Run(name, func(t *testing.T) {
			doc, err := ParseXML(xmlBody, DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			enc, err := EncodeWBXMLTrigger(doc.Root)
			if err != nil {
				t.Fatal(err)
			}
			if !looksWBXML(enc) {
				t.Fatalf("encoded trigger does not start with 03 13 6A: % X", enc[:4])
			}
			// Every name and URI in these triggers is in the DRM 2.1 tables, so nothing may go
			// through the string table.
			if enc[3] != 0 {
				t.Errorf("string table of %d bytes; all names should come from the code page", enc[3])
			}
			if len(enc) >= len(xmlBody) {
				t.Errorf("WBXML (%d bytes) is not smaller than the XML (%d bytes): tokens not used?", len(enc), len(xmlBody))
			}
			mx := Decode(xmlBody, Hint{ContentType: MIMETrig})
			for _, hint := range []Hint{{ContentType: MIMEWBXML}, {}} {
				mw := Decode(enc, hint)
				if fs := findingsOf(mw, RuleWBXMLMalformed.ID); len(fs) > 0 {
					t.Fatalf("hint %+v: %v", hint, fs)
				}
				if !mw.Has(RuleWBXML.ID) {
					t.Errorf("hint %+v: no %s finding", hint, RuleWBXML.ID)
				}
				if mw.Root == nil {
					t.Fatalf("hint %+v: no tree; reason %q", hint, mw.Reason)
				}
				if d := treeDiff(mx.Root, mw.Root, ""); d != "" {
					t.Errorf("tree differs from the XML parse: %s", d)
				}
				// A receiver re-derives what was signed from the XML form (roap-core §6.6).
				if cx, cw := Canonical(mx.Root, nil), Canonical(mw.Root, nil); !bytes.Equal(cx, cw) {
					t.Errorf("canonical forms differ:\nXML   %s\nWBXML %s", cx, cw)
				}
				if mw.Family != mx.Family || mw.Kind != mx.Kind || mw.Variant != mx.Variant || mw.Role != mx.Role {
					t.Errorf("classified %s/%s/%s/%s, XML gives %s/%s/%s/%s", mw.Family, mw.Kind, mw.Variant, mw.Role, mx.Family, mx.Kind, mx.Variant, mx.Role)
				}
				if !reflect.DeepEqual(mw.IDs, mx.IDs) {
					t.Errorf("IDs %v, XML gives %v", mw.IDs, mx.IDs)
				}
				if mw.Signature != nil {
					t.Errorf("signature span %v kept for a WBXML body", mw.Signature)
				}
				if mw.Has(RuleRootNS.ID) {
					t.Errorf("root namespace flagged for a WBXML trigger")
				}
				// Whatever the trigger checks find in the WBXML form they must also find in
				// the XML form: WBXML decoding may not invent problems.
				for _, f := range mw.Findings {
					if f.Severity.Rank() >= SevWarning.Rank() && !mx.Has(f.Rule) {
						t.Errorf("WBXML-only finding %s: %s", f.Rule, f.Message)
					}
				}
			}
		})
	}
}

// wbxmlHand is a roAcquisition trigger assembled byte by byte. It exercises attribute value
// tokens, STR_I and STR_T values, OPAQUE content, ENTITY, a LITERAL_C tag from the string
// table and a leading SWITCH_PAGE.
func wbxmlHand() ([]byte, []byte, []byte) {
	hash := []byte{0x23, 0xde, 0x3f, 0xa2, 0xf0, 0xe1, 0x8b, 0x31, 0x39, 0x9b, 0xf2, 0xba, 0xb7, 0x97, 0xf5, 0x86, 0x89, 0x52, 0x74, 0xb3}
	nonce := []byte("0123456789abcde")
	var b []byte
	b = append(b, 0x03, 0x13, 0x6A) // WBXML 1.3, public id 0x13 (-//OMA/DRM 2.1//EN), UTF-8
	tbl := "cid:cid6165_mid\x00x-vendor\x00"
	b = append(b, byte(len(tbl))) // string table length (mb_u_int32, one byte)
	b = append(b, tbl...)         // index 0: contentID value; index 16: literal tag name
	b = append(b, 0x00, 0x00)     // SWITCH_PAGE 0 (already the current page)
	b = append(b, 0xC5)           // roap:roapTrigger, attributes + content
	b = append(b, 0x06, 0x85)     //   xmlns:roap = urn:oma:bac:dldrm:roap-1.0
	b = append(b, 0x0D, 0x03)     //   version = STR_I
	b = append(b, "1.0\x00"...)
	b = append(b, 0x01)       //   END of attributes
	b = append(b, 0xC7, 0x0F) //   roAcquisition, attributes + content; id =
	b = append(b, 0x03)       //     STR_I
	b = append(b, "id1\x00"...)
	b = append(b, 0x01)             //     END of attributes
	b = append(b, 0x4C)             //     riID, content
	b = append(b, 0xD7)             //       keyIdentifier, attributes + content
	b = append(b, 0x07, 0x8B)       //         xmlns:xsi = XMLSchema-instance
	b = append(b, 0x11, 0x8D)       //         algorithm = xmldsig#sha1
	b = append(b, 0x05, 0x8C)       //         xsi:type = roap:X509SPKIHash
	b = append(b, 0x01)             //         END of attributes
	b = append(b, 0x58, 0xC3, 0x14) //         hash, content: OPAQUE of 20 bytes
	b = append(b, hash...)
	b = append(b, 0x01)             //         END hash
	b = append(b, 0x01)             //       END keyIdentifier
	b = append(b, 0x01)             //     END riID
	b = append(b, 0x4E, 0xC3, 0x0F) //     nonce, content: OPAQUE of 15 bytes
	b = append(b, nonce...)
	b = append(b, 0x01)       //     END nonce
	b = append(b, 0x4F, 0x03) //     roapURL, content: STR_I
	b = append(b, "http://ri.example.com/roap?a=1\x00"...)
	b = append(b, 0x01)       //     END roapURL
	b = append(b, 0x53, 0x03) //     roID, content: STR_I
	b = append(b, "ro-1\x00"...)
	b = append(b, 0x01)             //     END roID
	b = append(b, 0x55, 0x83, 0x00) //     contentID, content: STR_T index 0
	b = append(b, 0x01)             //     END contentID
	b = append(b, 0x44, 0x10, 0x03) //     LITERAL_C name at index 16 (x-vendor), content: STR_I
	b = append(b, "a\x00"...)
	b = append(b, 0x02, 0x26, 0x03) //       ENTITY U+0026 '&', then STR_I
	b = append(b, "b\x00"...)
	b = append(b, 0x01) //     END x-vendor
	b = append(b, 0x01) //   END roAcquisition
	b = append(b, 0x01) // END roapTrigger
	return b, hash, nonce
}

func TestWBXMLHandAssembled(t *testing.T) {
	body, hash, nonce := wbxmlHand()
	want := El("roap:roapTrigger", NS("roap", NSROAP), A("version", "1.0"),
		El("roAcquisition", A("id", "id1"),
			El("riID", El("keyIdentifier", NS("xsi", NSXSI), A("algorithm", AlgSHA1), A("xsi:type", "roap:X509SPKIHash"),
				El("hash", base64.StdEncoding.EncodeToString(hash)))),
			El("nonce", base64.StdEncoding.EncodeToString(nonce)),
			El("roapURL", "http://ri.example.com/roap?a=1"),
			El("roID", "ro-1"),
			El("contentID", "cid:cid6165_mid"),
			El("x-vendor", "a&b"),
		))
	m := decodeWBXMLDirect(body, DefaultLimits)
	if m.Root == nil {
		t.Fatalf("no tree: %q %v", m.Reason, m.Findings)
	}
	if d := treeDiff(want, m.Root, ""); d != "" {
		t.Fatalf("tree: %s", d)
	}
	for _, f := range m.Findings {
		if f.Rule == RuleWBXMLMalformed.ID || f.Rule == RuleWBXMLHeader.ID || f.Rule == RuleLimit.ID {
			t.Errorf("unexpected finding %+v", f)
		}
	}
	// The XML trigger handler reads the decoded tree: the OPAQUE hash and nonce arrive as the
	// base64 text an XML trigger would carry.
	if m.Family != FamilyTrigger || m.Variant != "roAcquisition" {
		t.Errorf("classified %s/%s", m.Family, m.Variant)
	}
	for k, v := range map[string]string{
		"riID": base64.StdEncoding.EncodeToString(hash), "nonce": base64.StdEncoding.EncodeToString(nonce),
		"roapURL": "http://ri.example.com/roap?a=1", "contentIDs": "cid:cid6165_mid",
	} {
		if got := m.ID(k); got != v {
			t.Errorf("ID %s = %q, want %q", k, got, v)
		}
	}
	if m.Namespace != NSROAP {
		t.Errorf("namespace %q", m.Namespace)
	}
	if sp := m.Root.Space; sp != "" {
		t.Errorf("root Space %q; WBXML namespaces are not resolved", sp)
	}
	// Node offsets point at the WBXML tokens: the hash element starts at its 0x58 tag token
	// and ends just past its END.
	h := m.Root.Find("roAcquisition/riID/keyIdentifier/hash")
	if h == nil || body[h.Start] != 0x58 || body[h.End-1] != 0x01 || h.End-h.Start != 1+2+20+1 {
		t.Errorf("hash node offsets wrong: %+v", h)
	}
	// The same body is recognised by its first bytes alone.
	if m2 := Decode(body, Hint{}); m2.Root == nil || !m2.Has(RuleWBXML.ID) {
		t.Errorf("not sniffed as WBXML: %q", m2.Reason)
	}
}

func TestWBXMLHeaderDeviations(t *testing.T) {
	body, _, _ := wbxmlHand()
	cases := []struct {
		name string
		head []byte
		want string
	}{
		{"public id 0x01", []byte{0x03, 0x01, 0x6A}, "public id 0x01"},
		{"version 1.2", []byte{0x02, 0x13, 0x6A}, "version byte 0x02"},
		{"charset us-ascii", []byte{0x03, 0x13, 0x03}, "charset MIBenum 3"},
	}
	for _, c := range cases {
		b := append(append([]byte{}, c.head...), body[3:]...)
		m := decodeWBXMLDirect(b, DefaultLimits)
		if m.Root == nil {
			t.Errorf("%s: not decoded: %q", c.name, m.Reason)
			continue
		}
		fs := findingsOf(m, RuleWBXMLHeader.ID)
		if len(fs) != 1 || fs[0].Severity != SevWarning || !strings.Contains(fs[0].Message, c.want) {
			t.Errorf("%s: header findings %v", c.name, fs)
		}
	}
	// Public id given as a string table reference (0 then index).
	tbl := "-//OMA/DRM 2.1//EN\x00"
	b := []byte{0x03, 0x00, 0x00, 0x6A, byte(len(tbl))}
	b = append(b, tbl...)
	b = append(b, 0x05) // an empty roap:roapTrigger
	m := decodeWBXMLDirect(b, DefaultLimits)
	if m.Root == nil || m.Root.Local != "roapTrigger" || m.Has(RuleWBXMLHeader.ID) {
		t.Errorf("public id by string: %q %v", m.Reason, m.Findings)
	}
	// Latin-1 strings are converted.
	b = []byte{0x03, 0x13, 0x04, 0x00, 0x45, 0x03, 0xE9, 0x00, 0x01}
	m = decodeWBXMLDirect(b, DefaultLimits)
	if m.Root == nil || m.Root.TextContent() != "é" {
		t.Errorf("latin-1: %q %v", m.Reason, m.Findings)
	}
}

func malformed(t *testing.T, m *Message, wantRule, wantText string) {
	t.Helper()
	if m.Root != nil {
		t.Errorf("a tree was produced for a broken body")
	}
	if m.Reason == "" {
		t.Errorf("no reason")
	}
	fs := findingsOf(m, wantRule)
	if len(fs) != 1 || fs[0].Severity != SevError {
		t.Fatalf("want one %s error, got %v", wantRule, m.Findings)
	}
	if !strings.Contains(fs[0].Message, wantText) {
		t.Errorf("finding %q does not mention %q", fs[0].Message, wantText)
	}
}

func TestWBXMLTruncated(t *testing.T) {
	bodies := [][]byte{}
	hand, _, _ := wbxmlHand()
	bodies = append(bodies, hand)
	for _, x := range triggerVectors(t) {
		doc, _ := ParseXML(x, DefaultLimits)
		enc, err := EncodeWBXMLTrigger(doc.Root)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, enc)
	}
	for _, body := range bodies {
		for n := 0; n < len(body); n++ {
			m := decodeWBXMLDirect(body[:n], DefaultLimits)
			if m.Root != nil || len(findingsOf(m, RuleWBXMLMalformed.ID)) != 1 || m.Reason == "" {
				t.Fatalf("truncated at %d of %d: root %v reason %q findings %v", n, len(body), m.Root != nil, m.Reason, m.Findings)
			}
		}
	}
}

func TestWBXMLJunk(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 20000; i++ {
		n := rng.Intn(64)
		b := make([]byte, n)
		rng.Read(b)
		if i%2 == 0 {
			b = append([]byte{0x03, 0x13, 0x6A, 0x00}, b...)
		}
		m := decodeWBXMLDirect(b, DefaultLimits)
		if m.Root == nil && !m.Has(RuleWBXMLMalformed.ID) && !m.Has(RuleLimit.ID) {
			t.Fatalf("% X: neither a tree nor an error finding: %v", b, m.Findings)
		}
	}
	m := decodeWBXMLDirect([]byte("<roap:roapTrigger/>"), DefaultLimits)
	malformed(t, m, RuleWBXMLMalformed.ID, "starts with '<'")
}

func TestWBXMLStructuralErrors(t *testing.T) {
	h := []byte{0x03, 0x13, 0x6A, 0x00}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name, want string
		body       []byte
	}{
		{"unknown tag", "unknown tag token 0x7F", cat(h, []byte{0x45, 0x7F, 0x01, 0x01})},
		{"unknown tag offset", "offset 5:", cat(h, []byte{0x45, 0x7F, 0x01, 0x01})},
		{"unknown attribute start", "unknown attribute start token 0x30", cat(h, []byte{0x85, 0x30, 0x01})},
		{"unknown attribute value", "unknown attribute value token 0xA0", cat(h, []byte{0x85, 0x0D, 0xA0, 0x01})},
		{"tag on page 1", "code page 1", cat(h, []byte{0x00, 0x01, 0x05})},
		{"extension token", "EXT_0 (0xC0)", cat(h, []byte{0x45, 0xC0, 0x01})},
		{"value before start", "before any attribute start", cat(h, []byte{0x85, 0x85, 0x01})},
		{"duplicate attribute", "duplicate attribute version", cat(h, []byte{0x85, 0x0D, 0x90, 0x0D, 0x91, 0x01})},
		{"trailing bytes", "after the root element", cat(h, []byte{0x05, 0x05})},
		{"no root", "no root element", h},
		{"string table declared too large", "declared as 4294967295 bytes", []byte{0x03, 0x13, 0x6A, 0x8F, 0xFF, 0xFF, 0xFF, 0x7F, 0x05}},
		{"mb_u_int32 of 6 bytes", "longer than 5 bytes", []byte{0x03, 0x13, 0x6A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x05}},
		{"mb_u_int32 over 32 bits", "exceeds 32 bits", []byte{0x03, 0x13, 0x6A, 0x9F, 0xFF, 0xFF, 0xFF, 0x7F, 0x05}},
		{"STR_T outside table", "outside the 0-byte string table", cat(h, []byte{0x45, 0x83, 0x05, 0x01})},
		{"STR_T unterminated", "not NUL-terminated", []byte{0x03, 0x13, 0x6A, 0x02, 'a', 'b', 0x45, 0x83, 0x00, 0x01}},
		{"OPAQUE too long", "OPAQUE declares 100 bytes", cat(h, []byte{0x45, 0xC3, 0x64, 0x01, 0x01})},
		{"invalid UTF-8", "not valid UTF-8", cat(h, []byte{0x45, 0x03, 0xFF, 0x00, 0x01})},
		{"control character", "U+0001", cat(h, []byte{0x45, 0x03, 0x01, 0x00, 0x01})},
		{"bad entity", "ENTITY U+0000", cat(h, []byte{0x45, 0x02, 0x00, 0x01})},
		{"literal name with space", "cannot appear in an XML name", []byte{0x03, 0x13, 0x6A, 0x04, 'a', ' ', 'b', 0x00, 0x04, 0x00}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			malformed(t, decodeWBXMLDirect(c.body, DefaultLimits), RuleWBXMLMalformed.ID, c.want)
		})
	}
}

func TestWBXMLLimits(t *testing.T) {
	// Deep nesting: riID with content, opened 10 000 times.
	deep := append([]byte{0x03, 0x13, 0x6A, 0x00}, bytes.Repeat([]byte{0x4C}, 10000)...)
	malformed(t, decodeWBXMLDirect(deep, DefaultLimits), RuleLimit.ID, "deeper than 64")
	lim := DefaultLimits
	lim.MaxDepth = 3
	ok := []byte{0x03, 0x13, 0x6A, 0x00, 0x4C, 0x4C, 0x0C, 0x01, 0x01}                  // depth 3
	tooDeep := []byte{0x03, 0x13, 0x6A, 0x00, 0x4C, 0x4C, 0x4C, 0x0C, 0x01, 0x01, 0x01} // depth 4
	if m := decodeWBXMLDirect(ok, lim); m.Root == nil {
		t.Errorf("depth 3 refused: %v", m.Findings)
	}
	malformed(t, decodeWBXMLDirect(tooDeep, lim), RuleLimit.ID, "deeper than 3")

	// Many nodes.
	lim = DefaultLimits
	lim.MaxNodes = 100
	wide := append([]byte{0x03, 0x13, 0x6A, 0x00, 0x45}, bytes.Repeat([]byte{0x0C}, 200)...)
	malformed(t, decodeWBXMLDirect(append(wide, 0x01), lim), RuleLimit.ID, "more than 100 nodes")

	// A string table present in full but beyond the cap.
	big := []byte{0x03, 0x13, 0x6A}
	big = appendMbUint32(big, wbxmlMaxStringTable+1)
	big = append(big, bytes.Repeat([]byte{'a'}, wbxmlMaxStringTable+1)...)
	big = append(big, 0x05)
	malformed(t, decodeWBXMLDirect(big, DefaultLimits), RuleLimit.ID, "string table")

	// STR_T amplification: one 60 KB table string referenced 100 000 times.
	amp := []byte{0x03, 0x13, 0x6A}
	amp = appendMbUint32(amp, 60001)
	amp = append(amp, bytes.Repeat([]byte{'a'}, 60000)...)
	amp = append(amp, 0x00, 0x45)
	amp = append(amp, bytes.Repeat([]byte{0x83, 0x00}, 100000)...)
	amp = append(amp, 0x01)
	malformed(t, decodeWBXMLDirect(amp, DefaultLimits), RuleLimit.ID, "bytes")

	// A body larger than MaxBytes is not decoded at all.
	lim = DefaultLimits
	lim.MaxBytes = 10
	hand, _, _ := wbxmlHand()
	malformed(t, decodeWBXMLDirect(hand, lim), RuleLimit.ID, "exceeds")
}

func TestWBXMLEncodeBuilt(t *testing.T) {
	// Names outside the tables go through the string table as LITERAL tokens; a default
	// namespace declaration has no token either.
	in := El("roap:roapTrigger", NS("roap", NSROAP), A("version", "1.0"),
		El("leaveDomain", A("id", "ld1"), A("vendor:flag", "x"),
			El("riID", El("keyIdentifier", A("xsi:type", "roap:X509SPKIHash"), El("hash", "aXENc+Um/9/NvmYKiHDLaErK0fk="))),
			El("roapURL", "http://ri.example.com/?a=1&b=2"),
			El("domainID", "Domain-XYZ-001"),
			El("roap:extensions", El("extension", NS("", "urn:example:x"), A("critical", "false"))),
		))
	enc, err := EncodeWBXMLTrigger(in)
	if err != nil {
		t.Fatal(err)
	}
	if enc[3] == 0 {
		t.Errorf("no string table although literal names are needed")
	}
	m := decodeWBXMLDirect(enc, DefaultLimits)
	if m.Root == nil {
		t.Fatalf("%q %v", m.Reason, m.Findings)
	}
	if d := treeDiff(in, m.Root, ""); d != "" {
		t.Errorf("round trip: %s", d)
	}
	if _, err := EncodeWBXMLTrigger(El("roap:roapTrigger", "a\x00b")); err == nil {
		t.Errorf("NUL in text encoded without error")
	}
	if _, err := EncodeWBXMLTrigger(nil); err == nil {
		t.Errorf("nil root encoded")
	}
}

func TestWBXMLMbUint32(t *testing.T) {
	for _, v := range []uint32{0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 1 << 28, 0xFFFFFFFF} {
		b := appendMbUint32(nil, v)
		r := &wbxmlReader{b: b}
		got, err := r.mbUint32("test")
		if err != nil || got != v || r.i != len(b) {
			t.Errorf("%d: % X -> %d %v", v, b, got, err)
		}
	}
	if b := appendMbUint32(nil, 0xA0); !bytes.Equal(b, []byte{0x81, 0x20}) {
		t.Errorf("0xA0 encodes as % X", b)
	}
}

func FuzzWBXML(f *testing.F) {
	hand, _, _ := wbxmlHand()
	f.Add(hand)
	for _, x := range triggerVectors(f) {
		doc, err := ParseXML(x, DefaultLimits)
		if err != nil {
			continue
		}
		if enc, err := EncodeWBXMLTrigger(doc.Root); err == nil {
			f.Add(enc)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m := decodeWBXMLDirect(body, DefaultLimits)
		if m.Root == nil {
			if !m.Has(RuleWBXMLMalformed.ID) && !m.Has(RuleLimit.ID) {
				t.Fatalf("no tree and no error finding: %v", m.Findings)
			}
			return
		}
		// Whatever decodes must encode again and decode to the same tree.
		enc, err := EncodeWBXMLTrigger(m.Root)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2 := decodeWBXMLDirect(enc, DefaultLimits)
		if m2.Root == nil {
			t.Fatalf("re-encoded body does not decode: %q", m2.Reason)
		}
		if d := treeDiff(m.Root, m2.Root, ""); d != "" {
			t.Fatalf("re-encoded tree differs: %s", d)
		}
	})
}
