package decode

import (
	"slices"
	"strings"
	"sync"
)

// Canonical returns the Exclusive XML Canonicalization 1.0 (without comments) of the subtree at
// n, leaving out every element for which skip returns true (nil skips nothing). ROAP signs
// "the message without its signature element" in this form.
//
// It is written here rather than taken from goxmldsig because that canonicalizer sorts prefixed
// attributes by local name where the W3C rule (and libxml2) sort by namespace URI, and rewrites
// literal tabs in attribute values; tests compare this output with `xmllint --exc-c14n`.
//
// Namespaces are resolved from the xmlns attributes of n and its ancestors (not from the Space
// fields), so hand-built trees canonicalize correctly before resolveTree has run. A prefix with
// no declaration in scope is written as it is, without a declaration, and such an attribute sorts
// among the unqualified ones by its full name, as libxml2 does.
func Canonical(n *Node, skip func(*Node) bool) []byte {
	if n == nil {
		return nil
	}
	size := 256
	if n.End > n.Start {
		size = n.End - n.Start + 64
	}
	c := c14nPool.Get().(*c14n)
	c.out, c.skip = make([]byte, 0, size), skip
	switch n.Kind {
	case TextNode:
		c.text(n.Text)
	case PINode:
		c.pi(n.Text)
	default:
		// Declarations made on ancestors are in scope for the subtree; exclusive c14n re-declares
		// on the apex whichever of them it visibly uses.
		c.declareAncestors(n.Parent)
		c.element(n)
	}
	out := c.out
	c.release()
	c14nPool.Put(c)
	return out
}

// c14nPool keeps the canonicalizer's stacks between calls; only the output is allocated anew.
var c14nPool = sync.Pool{New: func() any { return new(c14n) }}

// release forgets everything that points into the tree (so a pooled canonicalizer keeps no
// message alive) and drops stacks a huge document made large.
func (c *c14n) release() {
	clear(c.scope[:cap(c.scope)])
	clear(c.rendered[:cap(c.rendered)])
	clear(c.attrs[:cap(c.attrs)])
	c.out, c.skip = nil, nil
	c.scope, c.rendered, c.attrs = c.scope[:0], c.rendered[:0], c.attrs[:0]
	if cap(c.scope) > 1024 || cap(c.rendered) > 1024 || cap(c.attrs) > 1024 {
		c.scope, c.rendered, c.attrs = nil, nil, nil
	}
}

func (c *c14n) declareAncestors(e *Node) {
	if e == nil {
		return
	}
	c.declareAncestors(e.Parent)
	c.declare(e)
}

type nsBinding struct{ prefix, uri string }

type c14n struct {
	out      []byte
	skip     func(*Node) bool
	scope    []nsBinding // declarations in scope in the input, innermost last
	rendered []nsBinding // declarations written by output ancestors, innermost last
	attrs    []c14nAttr  // scratch for sorting one element's attributes
}

type c14nAttr struct {
	a     *Attr
	uri   string
	bound bool // the prefix resolved (or there is none)
}

func (c *c14n) declare(n *Node) {
	for i := range n.Attrs {
		if a := &n.Attrs[i]; a.IsNS {
			c.scope = append(c.scope, nsBinding{a.declaredPrefix(), a.Value})
		}
	}
}

func (c *c14n) lookup(prefix string) (string, bool) {
	switch prefix {
	case "xml":
		return nsXML, true
	case "xmlns":
		return nsXMLNS, true
	}
	for i := len(c.scope) - 1; i >= 0; i-- {
		if c.scope[i].prefix == prefix {
			return c.scope[i].uri, true
		}
	}
	return "", prefix == ""
}

func lookupRendered(r []nsBinding, prefix string) (string, bool) {
	for i := len(r) - 1; i >= 0; i-- {
		if r[i].prefix == prefix {
			return r[i].uri, true
		}
	}
	return "", false
}

// use records that the element visibly utilizes prefix, adding a declaration to
// c.rendered[base:] when no output ancestor has already rendered the same binding.
func (c *c14n) use(base int, prefix string) {
	if prefix == "xml" || prefix == "xmlns" {
		return // bound by definition, never declared
	}
	for _, d := range c.rendered[base:] {
		if d.prefix == prefix {
			return
		}
	}
	uri, ok := c.lookup(prefix)
	if !ok {
		return // unbound prefix: nothing can be declared for it
	}
	prev, was := lookupRendered(c.rendered[:base], prefix)
	if prefix == "" {
		// The empty default namespace is only rendered to undo a non-empty one above.
		if (!was && uri == "") || (was && prev == uri) {
			return
		}
	} else if was && prev == uri {
		return
	}
	c.rendered = append(c.rendered, nsBinding{prefix, uri})
}

func (c *c14n) element(n *Node) {
	if c.skip != nil && c.skip(n) {
		return
	}
	scopeBase := len(c.scope)
	c.declare(n)
	base := len(c.rendered)
	c.use(base, n.Prefix)
	for i := range n.Attrs {
		if a := &n.Attrs[i]; !a.IsNS && a.Prefix != "" {
			c.use(base, a.Prefix)
		}
	}
	decls := c.rendered[base:]
	slices.SortFunc(decls, func(x, y nsBinding) int { return strings.Compare(x.prefix, y.prefix) })

	attrs := c.attrs[:0]
	for i := range n.Attrs {
		a := &n.Attrs[i]
		if a.IsNS {
			continue
		}
		ca := c14nAttr{a: a, bound: true}
		if a.Prefix != "" {
			ca.uri, ca.bound = c.lookup(a.Prefix)
		}
		attrs = append(attrs, ca)
	}
	slices.SortStableFunc(attrs, compareAttrs)

	out := append(c.out, '<')
	out = appendQName(out, n.Prefix, n.Local)
	for _, d := range decls {
		if d.prefix == "" {
			out = append(out, ` xmlns="`...)
		} else {
			out = append(out, " xmlns:"...)
			out = append(out, d.prefix...)
			out = append(out, `="`...)
		}
		out = appendAttrValue(out, d.uri)
		out = append(out, '"')
	}
	for _, ca := range attrs {
		out = append(out, ' ')
		out = appendQName(out, ca.a.Prefix, ca.a.Local)
		out = append(out, `="`...)
		out = appendAttrValue(out, ca.a.Value)
		out = append(out, '"')
	}
	c.out = append(out, '>')
	clear(attrs)
	c.attrs = attrs[:0]

	for _, ch := range n.Children {
		switch ch.Kind {
		case ElementNode:
			c.element(ch)
		case TextNode:
			c.text(ch.Text)
		case PINode:
			c.pi(ch.Text)
		}
	}
	c.out = append(c.out, "</"...)
	c.out = appendQName(c.out, n.Prefix, n.Local)
	c.out = append(c.out, '>')
	c.rendered = c.rendered[:base]
	c.scope = c.scope[:scopeBase]
}

// compareAttrs orders attributes as exclusive c14n does: by namespace URI (none first), then by
// local name. An attribute whose prefix is unbound has no namespace and is ordered by its whole
// written name, like libxml2, which keeps such an attribute as a plain one named "p:local".
func compareAttrs(x, y c14nAttr) int {
	if x.uri != y.uri {
		return strings.Compare(x.uri, y.uri)
	}
	if x.bound && y.bound {
		return strings.Compare(x.a.Local, y.a.Local)
	}
	return strings.Compare(x.sortName(), y.sortName())
}

func (x c14nAttr) sortName() string {
	if x.bound {
		return x.a.Local
	}
	return x.a.Prefix + ":" + x.a.Local
}

func appendQName(out []byte, prefix, local string) []byte {
	if prefix != "" {
		out = append(out, prefix...)
		out = append(out, ':')
	}
	return append(out, local...)
}

func (c *c14n) text(s string) { c.out = appendText(c.out, s) }

func (c *c14n) pi(s string) {
	c.out = append(c.out, "<?"...)
	c.out = append(c.out, s...)
	c.out = append(c.out, "?>"...)
}

func appendText(out []byte, s string) []byte {
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
		out = append(out, s[last:i]...)
		out = append(out, r...)
		last = i + 1
	}
	return append(out, s[last:]...)
}

func appendAttrValue(out []byte, s string) []byte {
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
		out = append(out, s[last:i]...)
		out = append(out, r...)
		last = i + 1
	}
	return append(out, s[last:]...)
}
