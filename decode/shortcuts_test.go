package decode

import (
	"fmt"
	"mime"
	"strings"
	"testing"
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

func TestEstimateMarkup(t *testing.T) {
	for _, body := range [][]byte{fxRORequest(t), fxTokenDeliveryResponse(t)} {
		doc, err := ParseXML(body, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		attrs := 0
		fxWalk(doc.Root, func(n *Node) { attrs += len(n.Attrs) })
		nodes, nattrs := estimateMarkup(body)
		// An attribute value ending in base64 padding counts once more.
		if nodes != doc.Nodes || nattrs < attrs || nattrs > attrs+2 {
			t.Errorf("estimate %d nodes, %d attributes; the document has %d and %d", nodes, nattrs, doc.Nodes, attrs)
		}
	}
	// Text ending in '>' and attributes written with spaces around '=' are underestimated: the
	// parser must take further blocks and still build the whole tree.
	var b strings.Builder
	b.WriteString("<r>")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&b, `<a k = "%d" j = '%d'>x%d></a>`, i, i, i)
	}
	b.WriteString("</r>")
	nodes, attrs := estimateMarkup([]byte(b.String()))
	doc := fxMustParse(t, b.String())
	if nodes >= doc.Nodes || attrs != 0 || doc.Nodes != 601 {
		t.Fatalf("the document was meant to be underestimated: %d of %d nodes, %d attributes", nodes, doc.Nodes, attrs)
	}
	for i, a := range doc.Root.Children {
		if a.Local != "a" || len(a.Attrs) != 2 || a.Attrs[0].Value != fmt.Sprint(i) || a.Attrs[1].Value != fmt.Sprint(i) || a.TextContent() != fmt.Sprintf("x%d>", i) {
			t.Fatalf("element %d parsed wrong: %+v", i, a)
		}
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
