package decode

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fxC14NCases are hand-written documents that stress the places where exclusive c14n
// implementations usually go wrong. Each is compared with xmllint, as a whole, element by element
// (as subtrees) and with each element left out via the skip function.
var fxC14NCases = []struct{ name, doc string }{
	{"attr order: URI order differs from local-name order",
		`<r xmlns:a="urn:z" xmlns:b="urn:a" a:x="1" b:y="2" z="3" m="4"></r>`},
	{"attr order: same local name in two namespaces",
		`<r xmlns:p="urn:2" xmlns:q="urn:1" p:n="p" q:n="q" n="plain"></r>`},
	{"attr order: prefix order opposite to URI order",
		`<e xmlns:zz="http://a.example/" xmlns:aa="http://b.example/" aa:k="1" zz:k="2" zz:a="3"/>`},
	{"attr order: xml:lang among prefixed attributes",
		`<r xmlns:a="http://www.w3.org/2001/XMLSchema-instance" xmlns:b="zzz:last" b:t="1" xml:lang="en" a:type="x" plain="p"/>`},
	{"attr order: attribute in the element's own namespace",
		`<p:r xmlns:p="urn:p" p:a="1" b="2" a="0"/>`},
	{"default namespace undeclared",
		`<r xmlns="urn:d"><c xmlns=""><d>t</d></c><e/></r>`},
	{"default namespace undeclared below a prefixed element",
		`<r xmlns="urn:d"><p:c xmlns:p="urn:p" xmlns=""><e/></p:c></r>`},
	{"default namespace undeclared where none was rendered",
		`<p:r xmlns:p="urn:p" xmlns="urn:d"><c xmlns=""><e/></c></p:r>`},
	{"default namespace redeclared",
		`<r xmlns="urn:1"><c xmlns="urn:2"><d xmlns="urn:1"/></c><c xmlns="urn:1"/></r>`},
	{"declaration on ancestor, used only in subtrees",
		`<r xmlns:x="urn:x" xmlns:y="urn:y"><a><x:b/><x:b/></a><c y:at="v"><x:d/></c></r>`},
	{"unused declarations dropped",
		`<r xmlns:u="urn:unused" xmlns:x="urn:x" xmlns:v="urn:unused2"><x:a xmlns:w="urn:w"/></r>`},
	{"prefix redeclared with the same and another value",
		`<x:r xmlns:x="urn:1"><x:a xmlns:x="urn:1"><x:b xmlns:x="urn:2"><x:c xmlns:x="urn:1"/></x:b></x:a><x:d/></x:r>`},
	{"two prefixes for one namespace",
		`<a:r xmlns:a="urn:s" xmlns:b="urn:s"><b:c a:x="1"/></a:r>`},
	{"attribute values with tab, newline, CR, quote, ampersand, lt, gt, apos",
		`<r a="t&#9;n&#10;r&#13;q&quot;amp&amp;lt&lt;gt&gt;ap&apos;" b='single "quoted"' c="lit	tab
nl"></r>`},
	{"attribute value with CRLF literal",
		"<r a=\"x\r\ny\rz\"></r>"},
	{"text with CR, gt, amp, lt, quotes",
		"<r>a&#13;b\r\nc\rd &gt; e &amp; f &lt; g \" ' &#x9;h</r>"},
	{"CDATA merged with text",
		`<r>pre<![CDATA[<&>]]]]><![CDATA[>"]]>post<e/><![CDATA[]]></r>`},
	{"empty elements",
		`<r><a/><b></b><c x="1"/><d xmlns:p="urn:p" p:y="2" /></r>`},
	{"processing instructions inside the root",
		"<r><?pi   data  with  spaces  ?><?empty?><?nl\n  line1\r\n  line2 ?>x<?p2 a?></r>"},
	{"comments dropped",
		`<r>a<!-- c1 -->b<!---->c<e><!-- only --></e></r>`},
	{"white space between elements",
		"<r>\n  <a>1</a>\n\t<b>2</b>\r\n</r>"},
	{"non-ASCII and character references",
		`<r a="&#x20AC;&#8364;€">&#x1F600;😀&#xE9;é</r>`},
	{"XML declaration, comments and white space around the root",
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- before -->\n<r>x</r>\n<!-- after -->\n"},
	{"BOM",
		"\xEF\xBB\xBF<r>x</r>"},
	{"ROAP keyIdentifier shape",
		`<roap:deviceHello xmlns:roap="urn:oma:bac:dldrm:roap-1.0" triggerNonce="AAAA"><version>1.0</version><deviceID><keyIdentifier xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="roap:X509SPKIHash" algorithm="http://www.w3.org/2000/09/xmldsig#sha1"><hash>vXENc+Um/9/NvmYKiHDLaErK0gk=</hash></keyIdentifier></deviceID></roap:deviceHello>`},
	{"non-canonical ROAP: xsi declared on root, used below",
		`<roap:riHello xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success" sessionId="s1"><riID><keyIdentifier xsi:type="roap:X509SPKIHash"><hash>aGFzaA==</hash></keyIdentifier></riID><signature>c2ln</signature></roap:riHello>`},
	{"default namespace document with a prefixed child",
		`<rdp xmlns="urn:oma:xml:sce:dom" xmlns:gen="urn:oma:xml:sce:gen" xmlns:roap="urn:oma:bac:dldrm:roap-1.0"><gen:x gen:a="1"><roap:y/></gen:x><z/></rdp>`},
	{"quoted equals and spaces around attribute equals",
		`<r a = "1"   b	=	'2' ></r >`},
}

func TestC14NMatchesXmllintHandWritten(t *testing.T) {
	fxNeedXmllint(t)
	for _, tc := range fxC14NCases {
		t.Run(tc.name, func(t *testing.T) {
			fxCompareWholeDoc(t, []byte(tc.doc), false)
		})
	}
}

func TestC14NSubtreesMatchXmllint(t *testing.T) {
	fxNeedXmllint(t)
	for _, tc := range fxC14NCases {
		t.Run(tc.name, func(t *testing.T) {
			fxCompareSubtrees(t, []byte(tc.doc))
		})
	}
}

func TestC14NSkipMatchesXmllint(t *testing.T) {
	fxNeedXmllint(t)
	for _, tc := range fxC14NCases {
		t.Run(tc.name, func(t *testing.T) {
			fxCompareSkips(t, []byte(tc.doc))
		})
	}
}

// TestC14NVectorsMatchXmllint canonicalizes every shared vector. Files xmllint refuses must be
// refused by ParseXML too; files with namespace errors (undeclared prefixes) are compared as
// well, since libxml2's output for them is the tolerant reading this decoder also takes, but a
// mismatch there is only logged.
func TestC14NVectorsMatchXmllint(t *testing.T) {
	fxNeedXmllint(t)
	files := fxVectorFiles(t)
	if len(files) == 0 {
		t.Skip("shared vectors folder not present")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			x := fxXmllintC14N(t, raw)
			doc, perr := ParseXML(raw, DefaultLimits)
			if x.Failed {
				if perr == nil {
					t.Fatalf("xmllint refuses %s (%s) but ParseXML accepted it", f, strings.TrimSpace(x.Stderr))
				}
				return
			}
			if perr != nil {
				t.Fatalf("xmllint accepts %s but ParseXML says %v", f, perr)
			}
			got := Canonical(doc.Root, nil)
			if !bytes.Equal(got, x.Out) {
				if x.NSErrors {
					t.Skipf("namespace-ill-formed (xmllint: %s); outputs differ:\n got %s\nwant %s", fxFirstLine(x.Stderr), got, x.Out)
				}
				t.Fatalf("Canonical differs from xmllint --exc-c14n\n got %s\nwant %s", got, x.Out)
			}
			if x.NSErrors {
				return // subtrees of namespace-ill-formed files are not meaningful to compare
			}
			fxCompareSkips(t, raw)
		})
	}
}

// TestC14NVectorSubtrees compares every element of every namespace-well-formed vector as an
// apex of exclusive c14n.
func TestC14NVectorSubtrees(t *testing.T) {
	fxNeedXmllint(t)
	if testing.Short() {
		t.Skip("runs xmllint once per element")
	}
	for _, f := range fxVectorFiles(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		x := fxXmllintC14N(t, raw)
		if x.Failed || x.NSErrors {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) { fxCompareSubtrees(t, raw) })
	}
}

func fxFirstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// fxCompareWholeDoc compares Canonical(root) with xmllint and checks that the canonical form is
// a fixed point.
func fxCompareWholeDoc(t *testing.T, raw []byte, allowNSErrors bool) {
	t.Helper()
	doc, err := ParseXML(raw, DefaultLimits)
	if err != nil {
		t.Fatalf("ParseXML: %v", err)
	}
	x := fxXmllintC14N(t, raw)
	if x.Failed {
		t.Fatalf("xmllint refused the document: %s", x.Stderr)
	}
	if x.NSErrors && !allowNSErrors {
		t.Fatalf("test document is not namespace-well-formed: %s", x.Stderr)
	}
	got := Canonical(doc.Root, nil)
	if !bytes.Equal(got, x.Out) {
		t.Fatalf("Canonical differs from xmllint --exc-c14n\n  in %q\n got %q\nwant %q", raw, got, x.Out)
	}
	again, err := ParseXML(got, DefaultLimits)
	if err != nil {
		t.Fatalf("canonical form does not parse: %v", err)
	}
	if g2 := Canonical(again.Root, nil); !bytes.Equal(g2, got) {
		t.Fatalf("canonical form is not a fixed point\n once %q\ntwice %q", got, g2)
	}
}

// fxCompareSubtrees compares Canonical(e) for every element e with xmllint on e extracted
// into a document of its own that carries the declarations e inherits.
func fxCompareSubtrees(t *testing.T, raw []byte) {
	t.Helper()
	doc, err := ParseXML(raw, DefaultLimits)
	if err != nil {
		t.Fatalf("ParseXML: %v", err)
	}
	for _, e := range fxElements(doc.Root) {
		sub := fxExtractSubtree(raw, e)
		x := fxXmllintC14N(t, sub)
		if x.Failed || x.NSErrors {
			t.Fatalf("extracted subtree <%s> is not accepted by xmllint: %s\n%s", e.QName(), x.Stderr, sub)
		}
		if got := Canonical(e, nil); !bytes.Equal(got, x.Out) {
			t.Errorf("Canonical(<%s> at %d) differs from xmllint on the extracted subtree\n got %q\nwant %q", e.QName(), e.Start, got, x.Out)
		}
	}
}

// fxCompareSkips leaves out each non-root element in turn through the skip function and
// compares with xmllint on the document with that element's bytes removed.
func fxCompareSkips(t *testing.T, raw []byte) {
	t.Helper()
	doc, err := ParseXML(raw, DefaultLimits)
	if err != nil {
		t.Fatalf("ParseXML: %v", err)
	}
	els := fxElements(doc.Root)
	// A signature is what the skip function exists for; always try it, then a sample of others
	// so that big vectors stay quick.
	step := max(1, len(els)/12)
	for i, e := range els {
		if e == doc.Root || (i%step != 0 && e.Local != "signature") {
			continue
		}
		x := fxXmllintC14N(t, fxCut(raw, e))
		if x.Failed {
			t.Fatalf("xmllint refused the document without <%s>: %s", e.QName(), x.Stderr)
		}
		got := Canonical(doc.Root, func(n *Node) bool { return n == e })
		if !bytes.Equal(got, x.Out) {
			t.Errorf("Canonical skipping <%s> at %d differs from xmllint on the cut document\n got %q\nwant %q", e.QName(), e.Start, got, x.Out)
		}
	}
}

// TestC14NSubtreeByHand pins the apex rules with outputs derived by hand from the W3C
// Exclusive XML Canonicalization rules, independent of xmllint.
func TestC14NSubtreeByHand(t *testing.T) {
	doc := fxMustParse(t, `<roap:r xmlns:roap="urn:r" xmlns:xsi="urn:xsi" xmlns="urn:d" xmlns:unused="urn:u"><a><roap:b xsi:type="roap:T" z="1">x</roap:b><c xmlns="">y</c></a><signature>s</signature></roap:r>`)
	a := doc.Root.Child("a")
	b := a.Child("b")
	c := a.Child("c")
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		// b uses roap (its own prefix) and xsi (an attribute's); the default namespace and the
		// unused prefix are not visibly utilized; the QName in the xsi:type value does not count.
		{"prefixed apex", Canonical(b, nil), `<roap:b xmlns:roap="urn:r" xmlns:xsi="urn:xsi" z="1" xsi:type="roap:T">x</roap:b>`},
		// a is unprefixed in urn:d, so the apex declares the default namespace; c undeclares it.
		{"unprefixed apex", Canonical(a, nil), `<a xmlns="urn:d"><roap:b xmlns:roap="urn:r" xmlns:xsi="urn:xsi" z="1" xsi:type="roap:T">x</roap:b><c xmlns="">y</c></a>`},
		// c is in no namespace and no output ancestor rendered a default, so nothing is declared.
		{"apex in no namespace", Canonical(c, nil), `<c>y</c>`},
		{"root without its signature", Canonical(doc.Root, func(n *Node) bool { return n.Parent == doc.Root && n.Local == "signature" }),
			`<roap:r xmlns:roap="urn:r"><a xmlns="urn:d"><roap:b xmlns:xsi="urn:xsi" z="1" xsi:type="roap:T">x</roap:b><c xmlns="">y</c></a></roap:r>`},
		{"text node", Canonical(b.Children[0], nil), `x`},
	}
	for _, tc := range cases {
		if string(tc.got) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, tc.got, tc.want)
		}
	}
	if Canonical(nil, nil) != nil {
		t.Error("Canonical(nil) is not nil")
	}
}

// TestC14NUnboundPrefixes checks the tolerant reading of undeclared prefixes, which the ROAP
// sample triggers need: the prefix is written as is, no declaration is invented, and the
// attribute sorts among the unqualified ones by its written name (as libxml2 does).
func TestC14NUnboundPrefixes(t *testing.T) {
	doc := fxMustParse(t, `<r b="1" xsi:type="t" a="0" zz="2"><xsi:e/></r>`)
	want := `<r a="0" b="1" xsi:type="t" zz="2"><xsi:e></xsi:e></r>`
	if got := string(Canonical(doc.Root, nil)); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	fxNeedXmllint(t)
	fxCompareWholeDoc(t, []byte(`<r b="1" xsi:type="t" a="0" zz="2" ns:a="x"><k xmlns:ns="urn:n" ns:b="y" q:c="z"/></r>`), true)
}

// TestC14NBuiltTrees covers trees made with El, whose Space fields are never filled in:
// Canonical must resolve namespaces from the declarations alone.
func TestC14NBuiltTrees(t *testing.T) {
	n := El("roap:leaveDomainRequest", NS("roap", NSROAP), A("triggerNonce", "tn"),
		El("deviceID", El("keyIdentifier", NS("xsi", NSXSI), A("xsi:type", "roap:X509SPKIHash"), A("algorithm", AlgSHA1), El("hash", "aGFzaA=="))),
		El("x:ext", NS("x", "urn:x"), NS("", "urn:default"), El("inner")),
		El("signature", "c2ln"))
	want := `<roap:leaveDomainRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0" triggerNonce="tn"><deviceID><keyIdentifier xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" algorithm="http://www.w3.org/2000/09/xmldsig#sha1" xsi:type="roap:X509SPKIHash"><hash>aGFzaA==</hash></keyIdentifier></deviceID><x:ext xmlns:x="urn:x"><inner xmlns="urn:default"></inner></x:ext><signature>c2ln</signature></roap:leaveDomainRequest>`
	if got := string(Canonical(n, nil)); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	fxNeedXmllint(t)
	fxCompareWholeDoc(t, []byte(want), false)
}

// TestC14NAppendSafety guards the parser's shared storage: appending to one parsed node's
// children or attributes must not change another node.
func TestC14NAppendSafety(t *testing.T) {
	doc := fxMustParse(t, `<r><a x="1"><b/></a><c y="2"><d/></c></r>`)
	before := string(Canonical(doc.Root, nil))
	a := doc.Root.Child("a")
	a.Children = append(a.Children, &Node{Kind: TextNode, Text: "new", Parent: a})
	a.Attrs = append(a.Attrs, Attr{Local: "z", Value: "3"})
	after := string(Canonical(doc.Root, nil))
	want := strings.Replace(strings.Replace(before, `<b></b>`, `<b></b>new`, 1), `x="1"`, `x="1" z="3"`, 1)
	if after != want {
		t.Errorf("append leaked into a neighbour\n got %s\nwant %s", after, want)
	}
}
