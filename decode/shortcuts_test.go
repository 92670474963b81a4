package decode

import (
	"fmt"
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
