package decode

import (
	"sort"
	"strings"
)

// Canonical returns the Exclusive XML Canonicalization 1.0 (without comments) of the subtree at
// n, leaving out every element for which skip returns true (nil skips nothing). ROAP signs
// "the message without its signature element" in this form.
//
// It is written here rather than taken from goxmldsig because that canonicalizer sorts prefixed
// attributes by local name where the W3C rule (and libxml2) sort by namespace URI, and rewrites
// literal tabs in attribute values; tests compare this output with `xmllint --exc-c14n`.
func Canonical(n *Node, skip func(*Node) bool) []byte {
	var b strings.Builder
	c := c14n{b: &b, skip: skip}
	c.element(n, nil)
	return []byte(b.String())
}

type nsBinding struct{ prefix, uri string }

type c14n struct {
	b    *strings.Builder
	skip func(*Node) bool
}

// rendered holds the namespace bindings output by ancestors, innermost last.
func lookupRendered(r []nsBinding, prefix string) (string, bool) {
	for i := len(r) - 1; i >= 0; i-- {
		if r[i].prefix == prefix {
			return r[i].uri, true
		}
	}
	return "", false
}

func (c *c14n) element(n *Node, rendered []nsBinding) {
	if c.skip != nil && c.skip(n) {
		return
	}
	// Visibly utilized prefixes: the element's own and those of its attributes.
	var need []nsBinding
	addNeed := func(prefix string, holder *Node) {
		for _, x := range need {
			if x.prefix == prefix {
				return
			}
		}
		uri, ok := holder.lookupNS(prefix)
		if !ok && prefix != "" {
			return // unbound prefix: nothing can be declared for it
		}
		need = append(need, nsBinding{prefix, uri})
	}
	addNeed(n.Prefix, n)
	for _, a := range n.Attrs {
		if !a.IsNS && a.Prefix != "" && a.Prefix != "xml" {
			addNeed(a.Prefix, n)
		}
	}
	var decls []nsBinding
	for _, x := range need {
		prev, ok := lookupRendered(rendered, x.prefix)
		if x.prefix == "" {
			// The empty default namespace is only rendered to undo a non-empty one above.
			if (!ok && x.uri == "") || (ok && prev == x.uri) {
				continue
			}
		} else if ok && prev == x.uri {
			continue
		}
		decls = append(decls, x)
	}
	sort.Slice(decls, func(i, j int) bool { return decls[i].prefix < decls[j].prefix })

	attrs := make([]Attr, 0, len(n.Attrs))
	for _, a := range n.Attrs {
		if !a.IsNS {
			attrs = append(attrs, a)
		}
	}
	sort.SliceStable(attrs, func(i, j int) bool {
		if attrs[i].Space != attrs[j].Space {
			return attrs[i].Space < attrs[j].Space
		}
		return attrs[i].Local < attrs[j].Local
	})

	b := c.b
	b.WriteByte('<')
	b.WriteString(n.QName())
	for _, d := range decls {
		if d.prefix == "" {
			b.WriteString(` xmlns="`)
		} else {
			b.WriteString(" xmlns:")
			b.WriteString(d.prefix)
			b.WriteString(`="`)
		}
		escapeAttr(b, d.uri)
		b.WriteByte('"')
	}
	for _, a := range attrs {
		b.WriteByte(' ')
		if a.Prefix != "" {
			b.WriteString(a.Prefix)
			b.WriteByte(':')
		}
		b.WriteString(a.Local)
		b.WriteString(`="`)
		escapeAttr(b, a.Value)
		b.WriteByte('"')
	}
	b.WriteByte('>')
	inner := rendered
	if len(decls) > 0 {
		inner = append(append(make([]nsBinding, 0, len(rendered)+len(decls)), rendered...), decls...)
	}
	for _, ch := range n.Children {
		switch ch.Kind {
		case ElementNode:
			c.element(ch, inner)
		case TextNode:
			escapeText(b, ch.Text)
		case PINode:
			b.WriteString("<?")
			b.WriteString(strings.TrimRight(ch.Text, " \t\r\n"))
			b.WriteString("?>")
		}
	}
	b.WriteString("</")
	b.WriteString(n.QName())
	b.WriteByte('>')
}

func escapeText(b *strings.Builder, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var r string
		switch s[i] {
		case '&':
			r = "&amp;"
		case '<':
			r = "&lt;"
		case '>':
			r = "&gt;"
		case '\r':
			r = "&#xD;"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(r)
		last = i + 1
	}
	b.WriteString(s[last:])
}

func escapeAttr(b *strings.Builder, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var r string
		switch s[i] {
		case '&':
			r = "&amp;"
		case '<':
			r = "&lt;"
		case '"':
			r = "&quot;"
		case '\t':
			r = "&#x9;"
		case '\n':
			r = "&#xA;"
		case '\r':
			r = "&#xD;"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(r)
		last = i + 1
	}
	b.WriteString(s[last:])
}
