package decode

import (
	"fmt"
	"mime"
	"strings"
	"testing"
	"unicode/utf8"
)

// pathOfReference is PathOf as it was written before it was made to build its string in one
// allocation; the two must agree on every node.
func pathOfReference(n *Node) string {
	if n == nil {
		return ""
	}
	var parts []string
	for e := n; e != nil; e = e.Parent {
		seg := e.Local
		if e.Parent != nil {
			same, idx := 0, 0
			for _, s := range e.Parent.Children {
				if s.Kind == ElementNode && s.Local == e.Local {
					same++
					if s == e {
						idx = same
					}
				}
			}
			if same > 1 {
				seg += fmt.Sprintf("[%d]", idx)
			}
		}
		parts = append(parts, seg)
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(parts[i])
	}
	return b.String()
}

func TestPathOfMatchesFieldsAndReference(t *testing.T) {
	// Deeper than PathOf's on-stack segment buffer, with names repeated 12 times (two-digit
	// indexes), mixed with unique names, text and namespaced children.
	var b strings.Builder
	b.WriteString(`<r:root xmlns:r="urn:x">`)
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&b, `<item n="%d">t%d</item>`, i, i)
	}
	b.WriteString(`<other/>`)
	for i := 0; i < 20; i++ {
		b.WriteString(`<deep><x/><r:x/>`)
	}
	b.WriteString(`<leaf/>`)
	for i := 0; i < 20; i++ {
		b.WriteString(`</deep>`)
	}
	b.WriteString(`</r:root>`)
	doc := fxMustParse(t, b.String())

	want := map[*Node]string{}
	var collect func(n *Node, f *Field)
	collect = func(n *Node, f *Field) {
		want[n] = f.Path
		els := n.Elements()
		var kids []*Field
		for _, c := range f.Children {
			if !c.Attr {
				kids = append(kids, c)
			}
		}
		if len(kids) != len(els) {
			t.Fatalf("%s: %d element fields for %d elements", f.Path, len(kids), len(els))
		}
		for i, c := range els {
			collect(c, kids[i])
		}
	}
	m := &Message{Root: doc.Root}
	collect(doc.Root, m.Fields())
	checked := 0
	fxWalk(doc.Root, func(n *Node) {
		if n.Kind != ElementNode {
			return
		}
		got := PathOf(n)
		if got != want[n] || got != pathOfReference(n) {
			t.Fatalf("PathOf = %q; Fields says %q, the reference %q", got, want[n], pathOfReference(n))
		}
		checked++
	})
	if checked < 60 || !strings.Contains(want[doc.Root.Children[11]], "[12]") {
		t.Fatalf("the tree did not exercise deep and two-digit paths (%d nodes)", checked)
	}

	// A node its parent does not list (a tree built by hand) keeps the reference's "[0]".
	orphan := &Node{Kind: ElementNode, Local: "item", Parent: doc.Root}
	if got, ref := PathOf(orphan), pathOfReference(orphan); got != ref || !strings.HasSuffix(got, "/item[0]") {
		t.Fatalf("orphan path %q; reference %q", got, ref)
	}
	if PathOf(nil) != "" {
		t.Fatal("PathOf(nil) is not empty")
	}
}

func TestHasXMLSpaceIsContainsAny(t *testing.T) {
	for _, s := range []string{"", "QUJD", "QU JD", "QUJD\n", "\rQUJD", "QU\tJD", "\x0bQUJD", "QUJD\u00a0", strings.Repeat("A", 4096) + " "} {
		if got, want := hasXMLSpace(s), strings.ContainsAny(s, " \t\r\n"); got != want {
			t.Errorf("hasXMLSpace(%q) = %v, want %v", fxShort(s), got, want)
		}
	}
}

func TestBlockSizes(t *testing.T) {
	// Realistic messages fit their first two node blocks and their first child and attribute blocks.
	for _, body := range [][]byte{fxRORequest(t), fxTokenDeliveryResponse(t)} {
		doc, err := ParseXML(body, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		attrs := 0
		fxWalk(doc.Root, func(n *Node) { attrs += len(n.Attrs) })
		nodes, kids, nattrs := blockSizes(body)
		if nodes+max(nodes/4, 16) < doc.Nodes || kids < doc.Nodes-1 || nattrs != attrs {
			t.Errorf("first blocks of %d (+%d) nodes, %d children, %d attributes; the document has %d nodes and %d attributes",
				nodes, max(nodes/4, 16), kids, nattrs, doc.Nodes, attrs)
		}
	}
	// White space between all tags takes further node blocks: the whole tree must still be built.
	var b strings.Builder
	b.WriteString("<r>\n")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&b, "  <a k=\"%d\">x%d></a>\n", i, i)
	}
	b.WriteString("</r>")
	doc := fxMustParse(t, b.String())
	if nodes, _, _ := blockSizes([]byte(b.String())); nodes >= doc.Nodes || doc.Nodes != 902 {
		t.Fatalf("the document was meant to outgrow its first block: %d of %d nodes", nodes, doc.Nodes)
	}
	var els []*Node
	for _, c := range doc.Root.Children {
		if c.Kind == ElementNode {
			els = append(els, c)
		} else if c.Text != "\n  " && c.Text != "\n" {
			t.Fatalf("text node %q between elements", c.Text)
		}
	}
	for i, a := range els {
		if a.Local != "a" || len(a.Attrs) != 1 || a.Attrs[0].Value != fmt.Sprint(i) || a.TextContent() != fmt.Sprintf("x%d>", i) || a.Parent != doc.Root {
			t.Fatalf("element %d parsed wrong: %+v", i, a)
		}
	}
	if len(els) != 300 {
		t.Fatalf("%d elements parsed; 300 written", len(els))
	}
}

// mediaTypeReference is mediaType as it was written before it stopped calling mime.
func mediaTypeReference(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
	}
	return mt
}

func TestMediaTypeMatchesMime(t *testing.T) {
	for _, ct := range []string{"", MIMEPDU, "Application/Vnd.OMA.DRM.Roap-PDU+XML", " application/xml ; charset=utf-8",
		"text/html;charset=\"utf-8\"", "multipart/related; boundary=x; type=\"application/vnd.oma.drm.roap-pdu+xml\"",
		"application/xml; charset", "application/xml;;", "application/xml; a=1; a=2", "bad type", "/", "a/b/c", ";",
		"application/ocsp-response", "APPLICATION/OCSP-REQUEST\t", "text/plain; title*=UTF-8''%c2%a3", "x/\u00e9; q=1", "\xff/\xfe"} {
		if got, want := mediaType(ct), mediaTypeReference(ct); got != want {
			t.Errorf("mediaType(%q) = %q; mime gives %q", ct, got, want)
		}
	}
}

// End tags are compared with the start tag's name in place; the errors must be those the
// byte-by-byte scan gave (recorded from it).
func TestEndTagErrors(t *testing.T) {
	for _, c := range [][2]string{
		{"<a></ab>", "offset 3: end tag </ab> does not match <a> opened at offset 0"},
		{"<ab></a>", "offset 4: end tag </a> does not match <ab> opened at offset 0"},
		{"<a></a >", "<nil>"},
		{"<a></a", "offset 6: malformed end tag </a"},
		{"<a></", "offset 5: expected a name"},
		{"<a></a\t>", "<nil>"},
		{"<p:a xmlns:p='u'></p:a>", "<nil>"},
		{"<p:a xmlns:p='u'></p:ab>", "offset 17: end tag </p:ab> does not match <p:a> opened at offset 0"},
		{"<a></a/>", "offset 6: malformed end tag </a"},
		{"<a></b>", "offset 3: end tag </b> does not match <a> opened at offset 0"},
		{"<a><b></b></a>", "<nil>"},
	} {
		_, err := ParseXML([]byte(c[0]), DefaultLimits)
		if got := fmt.Sprint(err); got != c[1] {
			t.Errorf("ParseXML(%q): %s; want %s", c[0], got, c[1])
		}
	}
}

// checkCharsReference is checkChars one byte at a time.
func checkCharsReference(b []byte) (int, string) {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return i, fmt.Sprintf("control character 0x%02X is not allowed in XML", c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i, "body is not valid UTF-8"
		}
		if r == 0xFFFE || r == 0xFFFF {
			return i, fmt.Sprintf("character U+%04X is not allowed in XML", r)
		}
		i += n
	}
	return -1, ""
}

func TestCheckCharsMatchesReference(t *testing.T) {
	base := []byte(strings.Repeat("<a b=\"c\">text</a>", 8)) // 136 bytes of plain ASCII
	inserts := []string{"\x00", "\x01", "\x1f", "\t", "\n", "\r", "\x7f", "é", "\u00a0", "\xff", "\xc3", "\uFFFE", "\uFFFF", "\U0001F600", "\xe2\x82"}
	for _, ins := range inserts {
		for at := 0; at <= len(base); at++ {
			for _, tail := range []int{0, 1, 7, 31, 33} {
				b := append(append(append([]byte(nil), base[:at]...), ins...), base[at:]...)
				b = b[:len(b)-min(tail, len(b))]
				gi, gm := checkChars(b)
				wi, wm := checkCharsReference(b)
				if gi != wi || gm != wm {
					t.Fatalf("%q at %d (tail -%d): checkChars = %d %q; reference %d %q", ins, at, tail, gi, gm, wi, wm)
				}
			}
		}
	}
}

// findReference is Node.Find as written before it stopped splitting the path.
func findReference(n *Node, path string) *Node {
	cur := n
	for _, part := range strings.Split(path, "/") {
		if part == "" {
			continue
		}
		cur = cur.Child(part)
		if cur == nil {
			return nil
		}
	}
	return cur
}

func TestFindMatchesReference(t *testing.T) {
	doc := fxMustParse(t, `<r><a><b><c/></b><b/></a><x:a xmlns:x="u"><d/></x:a></r>`)
	for _, p := range []string{"", "/", "a", "a/b", "a/b/c", "/a/b/c/", "a//b", "a/b/c/d", "d", "a/d", "b", "//", "a/", "/a"} {
		if got, want := doc.Root.Find(p), findReference(doc.Root, p); got != want {
			t.Errorf("Find(%q) = %p; the split version gives %p", p, got, want)
		}
	}
}

func TestBase64DecodedLenMatchesDecodeBase64(t *testing.T) {
	for _, s := range []string{"", "QUJD", "QUJDRA==", "QUJDRA=", "QU JD", "QUJD\nRA==", "QUJD\r\nRA==", "Q\tUJD", "QUJD!", "QU\nJD!", "====", "QUJDRA==QUJD"} {
		n, err := base64DecodedLen(s)
		b, werr := DecodeBase64(s)
		if n != len(b) || fmt.Sprint(err) != fmt.Sprint(werr) {
			t.Errorf("base64DecodedLen(%q) = %d, %v; DecodeBase64 gives %d bytes, %v", s, n, err, len(b), werr)
		}
	}
}

// The parser records whether any prefix was unbound, so the tree walk is skipped only when
// there is nothing to find.
func TestUnboundPrefixStillReported(t *testing.T) {
	for _, c := range []struct {
		body string
		want bool
	}{
		{`<roap:roRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0"><deviceID><keyIdentifier xsi:type="roap:X509SPKIHash"/></deviceID></roap:roRequest>`, true},
		{`<roap:roRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0"><deviceID p:x="1"/></roap:roRequest>`, true},
		{`<roap:roRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0"><deviceID/></roap:roRequest>`, false},
		{`<x:roRequest><deviceID/></x:roRequest>`, true},
	} {
		m := Decode([]byte(c.body), Hint{})
		if got := m.Has(RuleXSIUndeclared.ID); got != c.want || m.Doc.unbound != c.want {
			t.Errorf("%s: DEC-XSI-UNDECLARED %v, parser flag %v; want %v", c.body, got, m.Doc.unbound, c.want)
		}
	}
}
