package decode

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestScannerNamespaces(t *testing.T) {
	doc := fxMustParse(t, `<p:root xmlns:p="urn:p" xmlns="urn:default" p:pa="1" plain="2">`+
		`<child><inner xmlns="" a="x"/></child>`+
		`<p:redecl xmlns:p="urn:other"><p:deep/></p:redecl>`+
		`<q:undeclared q:at="v" xsi:type="t"/>`+
		`<p:after/>`+
		`</p:root>`)
	r := doc.Root
	if r.Prefix != "p" || r.Local != "root" || r.Space != "urn:p" || r.UnboundPrefix {
		t.Errorf("root: %q %q %q unbound=%v", r.Prefix, r.Local, r.Space, r.UnboundPrefix)
	}
	if v, ok := r.AttrNS("urn:p", "pa"); !ok || v != "1" {
		t.Errorf("p:pa resolved to %q %v", v, ok)
	}
	// An unprefixed attribute is in no namespace even under a default namespace.
	if v, ok := r.AttrNS("", "plain"); !ok || v != "2" {
		t.Errorf("plain attribute: %q %v", v, ok)
	}
	if _, ok := r.Attr("pa"); ok {
		t.Error("Attr found a prefixed attribute by local name")
	}
	child := r.Child("child")
	if child == nil || child.Space != "urn:default" || child.Prefix != "" {
		t.Fatalf("child: %+v", child)
	}
	inner := child.Child("inner")
	if inner.Space != "" {
		t.Errorf("xmlns=\"\" did not undeclare the default namespace: %q", inner.Space)
	}
	redecl := r.Child("redecl")
	if redecl.Space != "urn:other" || redecl.Child("deep").Space != "urn:other" {
		t.Errorf("redeclared prefix: %q / %q", redecl.Space, redecl.Child("deep").Space)
	}
	if after := r.Child("after"); after.Space != "urn:p" {
		t.Errorf("a redeclaration leaked to a following sibling: %q", after.Space)
	}
	und := r.Child("undeclared")
	if !und.UnboundPrefix || und.Space != "" || und.Prefix != "q" {
		t.Errorf("undeclared prefix not tolerated as expected: %+v", und)
	}
	if v, ok := und.AttrNS("", "type"); !ok || v != "t" {
		t.Errorf("xsi:type with undeclared xsi: %q %v", v, ok)
	}
	for _, n := range []*Node{r, child, inner, redecl} {
		if n.UnboundPrefix {
			t.Errorf("<%s> wrongly marked UnboundPrefix", n.QName())
		}
	}
	// Only an attribute's prefix can make an element unbound.
	if d := fxMustParse(t, `<a x:y="1"/>`); !d.Root.UnboundPrefix {
		t.Error("unbound attribute prefix not recorded")
	}
	// The xml prefix is bound by definition.
	d := fxMustParse(t, `<a xml:lang="en"/>`)
	if v, ok := d.Root.AttrNS(nsXML, "lang"); !ok || v != "en" || d.Root.UnboundPrefix {
		t.Errorf("xml:lang: %q %v unbound=%v", v, ok, d.Root.UnboundPrefix)
	}
	// Namespace declarations are kept as attributes, marked IsNS.
	var decls []string
	for _, a := range r.Attrs {
		if a.IsNS {
			decls = append(decls, a.Prefix+":"+a.Local+"="+a.Value)
		}
	}
	if strings.Join(decls, " ") != "xmlns:p=urn:p :xmlns=urn:default" {
		t.Errorf("declarations: %v", decls)
	}
}

func TestScannerAttributeNormalization(t *testing.T) {
	doc := fxMustParse(t, "<a\tx=\"one\ttwo\nthree\r\nfour\rfive\"\n\ty='&#9;&#10;&#13;&#x20;'\r\nz=\"&lt;&gt;&amp;&apos;&quot;\" w='\"' v=\"'\"/>")
	r := doc.Root
	want := map[string]string{
		"x": "one two three four five", // literal white space becomes one space each (CRLF is one)
		"y": "\t\n\r ",                 // character references are not normalized
		"z": `<>&'"`,
		"w": `"`,
		"v": `'`,
	}
	for k, v := range want {
		if got, ok := r.Attr(k); !ok || got != v {
			t.Errorf("attribute %s = %q, want %q", k, got, v)
		}
	}
}

func TestScannerTextReferencesAndCDATA(t *testing.T) {
	doc := fxMustParse(t, "<a>x &lt;&gt;&amp;&apos;&quot; &#65;&#x42;&#x1F600;\r\ny\rz<![CDATA[<&>\r\n]]>tail</a>")
	r := doc.Root
	if len(r.Children) != 1 || r.Children[0].Kind != TextNode {
		t.Fatalf("text and CDATA were not merged into one node: %d children", len(r.Children))
	}
	want := "x <>&'\" AB😀\ny\nz<&>\ntail"
	if got := r.Children[0].Text; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
	if r.Children[0].Start != r.Inner || r.Children[0].End != r.InnerEnd {
		t.Errorf("merged text spans %d..%d, content is %d..%d", r.Children[0].Start, r.Children[0].End, r.Inner, r.InnerEnd)
	}
	if got := r.TextContent(); got != strings.TrimSpace(want) {
		t.Errorf("TextContent = %q", got)
	}
}

func TestScannerCommentsAndPIs(t *testing.T) {
	src := "<?xml version=\"1.0\"?><?style sheet?><!-- c --><r>a<!-- in -->b<?pi  data ?><e/><!--x--></r><!-- after --><?tail?>\n"
	doc := fxMustParse(t, src)
	if !doc.Comments || !doc.Prolog || doc.BOM {
		t.Errorf("flags: comments=%v prolog=%v bom=%v", doc.Comments, doc.Prolog, doc.BOM)
	}
	r := doc.Root
	if len(r.Children) != 3 {
		t.Fatalf("children: %d, want text, PI, element", len(r.Children))
	}
	txt, pi, el := r.Children[0], r.Children[1], r.Children[2]
	if txt.Kind != TextNode || txt.Text != "ab" {
		t.Errorf("text around a comment: %q", txt.Text)
	}
	if pi.Kind != PINode || pi.Text != "pi data " || src[pi.Start:pi.End] != "<?pi  data ?>" {
		t.Errorf("PI: %q at %q", pi.Text, src[pi.Start:pi.End])
	}
	if el.Kind != ElementNode || el.Local != "e" {
		t.Errorf("element after PI: %+v", el)
	}
	if doc.Nodes != 4 {
		t.Errorf("Nodes = %d, want 4 (r, text, PI, e)", doc.Nodes)
	}
	plain := fxMustParse(t, "<r/>")
	if plain.Comments || plain.Prolog || plain.BOM {
		t.Error("flags set on a bare document")
	}
}

func TestScannerBOMAndDeclaration(t *testing.T) {
	src := "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<r a=\"1\">x</r>"
	doc := fxMustParse(t, src)
	if !doc.BOM || !doc.Prolog {
		t.Errorf("bom=%v prolog=%v", doc.BOM, doc.Prolog)
	}
	if got := src[doc.Root.Start:doc.Root.End]; got != `<r a="1">x</r>` {
		t.Errorf("root span includes the prolog or misses bytes: %q", got)
	}
	if !bytes.Equal(doc.Raw, []byte(src)) {
		t.Error("Raw is not the body")
	}
}

// TestScannerOffsets checks Start, Inner, InnerEnd and End of every element of several messages:
// the start tag, content and end tag they delimit must be exactly the wire bytes, the children
// must tile the content with nothing but comments between them, and each element's bytes must
// canonicalize on their own exactly as the element does within the document.
func TestScannerOffsets(t *testing.T) {
	bodies := map[string][]byte{
		"hand-made": []byte("\xEF\xBB\xBF<?xml version=\"1.0\"?>\n<!--c--><p:r xmlns:p=\"urn:p\" a='1'>\n <x/><y\tb=\"2\" ></y ><!--c--><z>t&amp;<![CDATA[c]]><!--m-->u</z>\n<?pi d?></p:r>\n"),
	}
	for _, f := range fxVectorFiles(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseXML(raw, DefaultLimits); err == nil {
			bodies[filepath.Base(f)] = raw
		}
	}
	for name, raw := range bodies {
		doc, err := ParseXML(raw, DefaultLimits)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s := string(raw)
		fxWalk(doc.Root, func(n *Node) {
			switch n.Kind {
			case ElementNode:
				fxCheckElementSpans(t, name, s, n)
			case TextNode:
				if strings.Contains(s[n.Start:n.End], "<") {
					return // CDATA or comments inside the run
				}
				if got := strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "\r\n", "\n").Replace(s[n.Start:n.End]); !strings.Contains(got, "&") && got != n.Text {
					t.Errorf("%s: text span %q does not hold text %q", name, s[n.Start:n.End], n.Text)
				}
			case PINode:
				if !strings.HasPrefix(s[n.Start:n.End], "<?") || !strings.HasSuffix(s[n.Start:n.End], "?>") {
					t.Errorf("%s: PI span %q", name, s[n.Start:n.End])
				}
			}
		})
	}
}

func fxCheckElementSpans(t *testing.T, name, s string, n *Node) {
	t.Helper()
	if !(n.Start < n.Inner && n.Inner <= n.InnerEnd && n.InnerEnd <= n.End && n.End <= len(s)) {
		t.Errorf("%s: <%s> offsets out of order: %d %d %d %d", name, n.QName(), n.Start, n.Inner, n.InnerEnd, n.End)
		return
	}
	start := s[n.Start:n.Inner]
	if !strings.HasPrefix(start, "<"+n.QName()) || !strings.HasSuffix(start, ">") {
		t.Errorf("%s: start tag of <%s> is %q", name, n.QName(), start)
	}
	end := s[n.InnerEnd:n.End]
	if strings.HasSuffix(start, "/>") {
		if end != "" || n.Inner != n.InnerEnd {
			t.Errorf("%s: empty <%s> has content or end tag %q", name, n.QName(), end)
		}
	} else if strings.TrimRight(strings.TrimSuffix(end, ">"), " \t\r\n") != "</"+n.QName() || !strings.HasSuffix(end, ">") {
		t.Errorf("%s: end tag of <%s> is %q", name, n.QName(), end)
	}
	// Children tile the content; the gaps may only hold comments.
	at := n.Inner
	for _, c := range n.Children {
		if c.Start < at {
			t.Errorf("%s: child of <%s> at %d overlaps the previous one (ends %d)", name, n.QName(), c.Start, at)
		}
		fxCheckGap(t, name, s[at:c.Start])
		at = c.End
	}
	if at > n.InnerEnd {
		t.Errorf("%s: children of <%s> run past its content", name, n.QName())
	}
	fxCheckGap(t, name, s[at:n.InnerEnd])
	// The element's own bytes (with the declarations it inherits) make the same canonical form.
	sub, err := ParseXML(fxExtractSubtree([]byte(s), n), DefaultLimits)
	if err != nil {
		t.Errorf("%s: bytes of <%s> do not parse alone: %v", name, n.QName(), err)
		return
	}
	if a, b := Canonical(n, nil), Canonical(sub.Root, nil); !bytes.Equal(a, b) {
		t.Errorf("%s: <%s> span does not hold the element:\n in doc %s\n alone  %s", name, n.QName(), a, b)
	}
}

func fxCheckGap(t *testing.T, name, gap string) {
	t.Helper()
	for gap != "" {
		if !strings.HasPrefix(gap, "<!--") {
			t.Errorf("%s: bytes %q between children belong to no node", name, gap)
			return
		}
		k := strings.Index(gap, "-->")
		gap = gap[k+3:]
	}
}

// TestScannerMalformed gives each malformed input and where its error must point. Each input is
// also fed to xmllint (when installed) to make sure it really is malformed.
func TestScannerMalformed(t *testing.T) {
	cases := []struct {
		name, doc string
		at        string // the error offset is the index of this marker (after the first "|")
		atEnd     bool   // the error offset is len(doc)
		msg       string // part of the message
		dtd       bool
		policy    bool // XML that xmllint accepts (at most with a namespace error) but the scanner refuses on purpose
	}{
		{name: "empty", doc: ``, atEnd: true, msg: "no root"},
		{name: "only white space", doc: " \n", atEnd: true, msg: "no root"},
		{name: "text before the root", doc: `hello<a/>`, at: `hello`, msg: "no root"},
		{name: "unclosed root", doc: `<a><b></b>`, atEnd: true, msg: "missing end tag </a>"},
		{name: "unclosed start tag", doc: `<a x="1"`, atEnd: true, msg: "unterminated start tag"},
		{name: "mismatched end tag", doc: `<a><b>t</c></a>`, at: `</c>`, msg: "does not match <b>"},
		{name: "swapped end tags", doc: `<a><b><c></b></c></a>`, at: `</b>`, msg: "does not match <c>"},
		{name: "duplicate attribute", doc: `<a x="1" y="2" x="3"/>`, at: `x="3"`, msg: "duplicate attribute x"},
		{name: "duplicate namespaced attribute", doc: `<a xmlns:p="urn:s" xmlns:q="urn:s" p:x="1" q:x="2"/>`, at: `q:x`, msg: "duplicate attribute q:x", policy: true}, // a namespace error for xmllint
		{name: "duplicate declaration", doc: `<a xmlns:p="urn:1" xmlns:p="urn:2"/>`, at: `xmlns:p="urn:2"`, msg: "duplicate attribute xmlns:p"},
		{name: "duplicate among many attributes", doc: `<a a0="" a1="" a2="" a3="" a4="" a5="" a6="" a7="" a8="" a9="" b0="" b1="" b2="" b3="" b4="" b5="" b6="" b7="" a3="x"/>`, at: `a3="x"`, msg: "duplicate attribute a3"},
		{name: "'<' in attribute", doc: `<a x="1<2"/>`, at: `<2`, msg: "'<' in the value"},
		{name: "unterminated attribute value", doc: `<a x="1/>`, at: `1/>`, msg: "unterminated value"},
		{name: "unquoted attribute", doc: `<a x=1/>`, at: `1/>`, msg: "not quoted"},
		{name: "attribute without value", doc: `<a x/>`, at: `/>`, msg: "has no value"},
		{name: "attributes not separated", doc: `<a x="1"y="2"/>`, at: `y=`, msg: "separated by white space"},
		{name: "stray slash", doc: `<a / >`, at: `/ >`, msg: "stray '/'"},
		{name: "name starting with a digit", doc: `<1a/>`, at: `1a`, msg: "expected a name"},
		{name: "child name starting with '-'", doc: `<a><-b/></a>`, at: `-b`, msg: "expected a name"},
		{name: "content after root", doc: `<a/>junk`, at: `junk`, msg: "after the root"},
		{name: "second root", doc: "<a/>\n<b/>", at: `<b/>`, msg: "after the root"},
		{name: "bad char ref NUL", doc: `<a>x&#0;</a>`, at: `&#0;`, msg: "invalid character reference"},
		{name: "bad char ref surrogate", doc: `<a>&#xD800;</a>`, at: `&#xD800;`, msg: "invalid character reference"},
		{name: "bad char ref too big", doc: `<a>&#x110000;</a>`, at: `&#x110000;`, msg: "invalid character reference"},
		{name: "bad char ref digits", doc: `<a>&#12a;</a>`, at: `&#12a;`, msg: "invalid character reference"},
		{name: "bad char ref uppercase X", doc: `<a>&#X41;</a>`, at: `&#X41;`, msg: "invalid character reference"},
		{name: "empty char ref", doc: `<a b="&#x;"/>`, at: `&#x;`, msg: "invalid character reference"},
		{name: "bad char ref in attribute", doc: `<a b="&#1;"/>`, at: `&#1;`, msg: "invalid character reference"},
		{name: "undefined entity", doc: `<a>&nbsp;</a>`, at: `&nbsp;`, msg: "undefined entity &nbsp;"},
		{name: "undefined entity in attribute", doc: `<a b="x&copy;"/>`, at: `&copy;`, msg: "undefined entity"},
		{name: "unterminated entity", doc: `<a>&amp</a>`, at: `&amp`, msg: "unterminated entity"},
		{name: "bare ampersand", doc: `<a>fish & chips; </a>`, at: `& chips`, msg: "undefined entity"},
		{name: "DOCTYPE", doc: `<!DOCTYPE a><a/>`, at: `<!DOCTYPE`, msg: "document type", dtd: true, policy: true},
		{name: "markup declaration inside", doc: `<a><!ENTITY x "y"></a>`, at: `<!ENTITY`, msg: "markup declaration", dtd: true},
		{name: "unterminated comment", doc: `<a><!-- x </a>`, at: `<!--`, msg: "unterminated comment"},
		{name: "double hyphen in comment", doc: `<a><!-- x -- y --></a>`, at: `-- y`, msg: "'--' inside a comment"},
		{name: "comment ending in three hyphens", doc: `<a><!-- x ---></a>`, at: `--->`, msg: "'--' inside a comment"},
		{name: "unterminated CDATA", doc: `<a><![CDATA[x</a>`, at: `<![CDATA[`, msg: "unterminated CDATA"},
		{name: "unterminated PI", doc: `<a><?pi x</a>`, at: `<?pi`, msg: "unterminated processing instruction"},
		{name: "PI without target", doc: `<a><? x?></a>`, at: ` x?>`, msg: "not a name"},
		{name: "XML declaration inside the root", doc: `<a><?xml version="1.0"?></a>`, at: `<?xml`, msg: "only allowed at the start"},
		{name: "XML declaration after white space", doc: " <?xml version=\"1.0\"?><a/>", at: `<?xml`, msg: "only allowed at the start"},
		{name: "XML declaration twice", doc: `<?xml version="1.0"?><?xml version="1.0"?><a/>`, at: `<?xml version="1.0"?><a/>`, msg: "only allowed at the start"},
		{name: "XML declaration without version", doc: `<?xml encoding="UTF-8"?><a/>`, at: `<?xml`, msg: "without a version"},
		{name: "invalid UTF-8", doc: "<a>x\xff</a>", at: "\xff", msg: "not valid UTF-8"},
		{name: "truncated UTF-8", doc: "<a>\xe2\x82</a>", at: "\xe2", msg: "not valid UTF-8"},
		{name: "control character", doc: "<a>x\x01y</a>", at: "\x01", msg: "control character 0x01"},
		{name: "NUL in a long ASCII run", doc: "<a>0123456789abcdef\x00</a>", at: "\x00", msg: "control character 0x00"},
		{name: "U+FFFE", doc: "<a>\uFFFE</a>", at: "\uFFFE", msg: "U+FFFE"},
		{name: "malformed end tag", doc: `<a></a x>`, at: `x>`, msg: "malformed end tag"},
		{name: "lone '<' at the end", doc: `<a><`, atEnd: true, msg: "expected a name"},
	}
	haveXmllint := true
	if _, err := exec.LookPath("xmllint"); err != nil {
		haveXmllint = false
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseXML([]byte(tc.doc), DefaultLimits)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("ParseXML(%q) = %v, want a *SyntaxError", tc.doc, err)
			}
			want := len(tc.doc)
			if !tc.atEnd {
				want = strings.Index(tc.doc, tc.at)
				if want < 0 {
					t.Fatalf("bad test: marker %q not in %q", tc.at, tc.doc)
				}
				if strings.Count(tc.doc, tc.at) > 1 {
					want = strings.LastIndex(tc.doc, tc.at)
				}
			}
			if se.Offset != want {
				t.Errorf("offset %d, want %d (%q): %v", se.Offset, want, tc.doc[min(want, len(tc.doc)):], se)
			}
			if !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("message %q does not mention %q", se.Msg, tc.msg)
			}
			if se.DTD != tc.dtd || se.Limit {
				t.Errorf("flags DTD=%v Limit=%v", se.DTD, se.Limit)
			}
			if !strings.HasPrefix(se.Error(), "offset ") {
				t.Errorf("Error() = %q", se.Error())
			}
			if haveXmllint && !tc.policy && fxXmllintAccepts(t, []byte(tc.doc)) {
				t.Errorf("xmllint accepts %q, so the test case is not malformed", tc.doc)
			}
		})
	}
}

// TestScannerTolerated lists deviations the scanner accepts on purpose, because real peers and
// test data send them.
func TestScannerTolerated(t *testing.T) {
	for _, doc := range []string{
		`<roap:t xmlns:roap="urn:oma:bac:dldrm:roap-1.0"><k xsi:type="roap:X"/></roap:t>`, // undeclared xsi
		"<a\tx=\"1\"\ty=\"2\"/>", // tabs between attributes
		`<a>]]></a>`,             // "]]>" in text
		`<a:b:c/>`,               // a name with two colons
		`<a><?xml-stylesheet href="x"?></a>`,
		"<a></a \t\r\n>",
		`<é/>`,
	} {
		if _, err := ParseXML([]byte(doc), DefaultLimits); err != nil {
			t.Errorf("ParseXML(%q): %v", doc, err)
		}
	}
}

func TestScannerLimitsAreFlagged(t *testing.T) {
	lim := DefaultLimits
	lim.MaxDepth, lim.MaxNodes, lim.MaxAttrs, lim.MaxNameLen, lim.MaxTextSize = 3, 10, 2, 8, 16
	cases := map[string]string{
		"depth":         `<a><b><c><d/></c></b></a>`,
		"nodes":         `<a>` + strings.Repeat(`<b/>`, 10) + `</a>`,
		"attributes":    `<a x="1" y="2" z="3"/>`,
		"declarations":  `<a xmlns:p="1"><b xmlns:q="2"><c xmlns:r="3"/></b></a>`,
		"name":          `<abcdefghijk/>`,
		"text":          `<a>` + strings.Repeat("x", 17) + `</a>`,
		"text run":      `<a>` + strings.Repeat("x<!---->", 3) + strings.Repeat("y", 14) + `</a>`,
		"attr value":    `<a x="` + strings.Repeat("v", 17) + `"/>`,
		"size":          strings.Repeat(" ", lim.MaxBytes+1),
		"CDATA in text": `<a>` + strings.Repeat("<![CDATA[xxxx]]>", 2) + `</a>`,
	}
	for name, doc := range cases {
		_, err := ParseXML([]byte(doc), lim)
		var se *SyntaxError
		if !errors.As(err, &se) || !se.Limit {
			t.Errorf("%s: got %v, want a limit error", name, err)
		}
	}
	// Just under every limit parses.
	if _, err := ParseXML([]byte(`<a x="1" y="2"><b><c>`+strings.Repeat("x", 16)+`</c></b></a>`), lim); err != nil {
		t.Errorf("document within limits: %v", err)
	}
}

func TestNodeHelpers(t *testing.T) {
	doc := fxMustParse(t, `<r><deviceId>d</deviceId><item>1</item><item>2</item><x><y><z> deep </z></y></x><e></e></r>`)
	r := doc.Root
	if r.Child("deviceID") != nil || r.ChildFold("deviceID") == nil {
		t.Error("Child must be exact and ChildFold case-insensitive")
	}
	if got := len(r.ChildrenNamed("item")); got != 2 {
		t.Errorf("ChildrenNamed = %d", got)
	}
	if got := len(r.Elements()); got != 5 {
		t.Errorf("Elements = %d", got)
	}
	if z := r.Find("x/y/z"); z == nil || z.TextContent() != "deep" {
		t.Errorf("Find: %v", z)
	}
	if r.Find("x/nope/z") != nil || r.Child("e").TextContent() != "" {
		t.Error("Find of a missing path or TextContent of an empty element")
	}
	var nilNode *Node
	if nilNode.Child("a") != nil || nilNode.ChildFold("a") != nil || nilNode.ChildrenNamed("a") != nil || nilNode.TextContent() != "" {
		t.Error("helpers on a nil node")
	}
	if _, ok := nilNode.Attr("a"); ok {
		t.Error("Attr on nil")
	}
}

// TestScannerConcurrent parses and canonicalizes different documents from many goroutines: the
// pooled scratch memory of the scanner and the canonicalizer must never leak between calls.
// Run with -race.
func TestScannerConcurrent(t *testing.T) {
	docs := []string{
		fxC14NCases[0].doc, fxC14NCases[5].doc, fxC14NCases[9].doc, fxC14NCases[13].doc,
		string(fxRORequest(t)), string(fxTokenDeliveryResponse(t)),
	}
	want := make([][]byte, len(docs))
	for i, d := range docs {
		want[i] = Canonical(fxMustParse(t, d).Root, nil)
	}
	errs := make(chan string, 64)
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for k := range 200 {
				i := (g + k) % len(docs)
				doc, err := ParseXML([]byte(docs[i]), DefaultLimits)
				if err != nil {
					errs <- err.Error()
					return
				}
				if got := Canonical(doc.Root, nil); !bytes.Equal(got, want[i]) {
					errs <- fmt.Sprintf("document %d canonicalized differently under concurrency:\n%s", i, got)
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
