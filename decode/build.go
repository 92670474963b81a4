package decode

import "strings"

// Building messages: the simulated peers and rewrite rules construct element trees with El and
// serialize them with Bytes, which always yields the exclusive canonical form that ROAP requires
// on the wire (no XML declaration, no self-closing tags, sorted attributes, namespace
// declarations only where a prefix is visibly used).

// NS declares prefix as uri on the element being built ("" declares the default namespace).
func NS(prefix, uri string) Attr {
	if prefix == "" {
		return Attr{Local: "xmlns", Value: uri, IsNS: true}
	}
	return Attr{Prefix: "xmlns", Local: prefix, Value: uri, IsNS: true}
}

// A is an attribute given by its qualified name as written (for example "xsi:type").
func A(qname, value string) Attr {
	p, l := splitQName(qname)
	return Attr{Prefix: p, Local: l, Value: value}
}

// T is a text node.
func T(s string) *Node { return &Node{Kind: TextNode, Text: s} }

// El builds an element named qname from items: Attr values become attributes or namespace
// declarations, *Node values become children (nil children are skipped, which keeps optional
// fields easy to write), and strings become text.
func El(qname string, items ...any) *Node {
	n := &Node{Kind: ElementNode}
	n.Prefix, n.Local = splitQName(qname)
	for _, it := range items {
		switch v := it.(type) {
		case Attr:
			n.Attrs = append(n.Attrs, v)
		case []Attr:
			n.Attrs = append(n.Attrs, v...)
		case *Node:
			if v != nil {
				v.Parent = n
				n.Children = append(n.Children, v)
			}
		case []*Node:
			for _, c := range v {
				if c != nil {
					c.Parent = n
					n.Children = append(n.Children, c)
				}
			}
		case string:
			n.Children = append(n.Children, &Node{Kind: TextNode, Text: v, Parent: n})
		}
	}
	return n
}

// Append adds element or text children to n, skipping nil ones as El does, so optional fields
// can be appended without a check at every call site.
func (n *Node) Append(kids ...*Node) {
	for _, c := range kids {
		if c != nil {
			c.Parent = n
			n.Children = append(n.Children, c)
		}
	}
}

// Bytes returns the canonical serialization of a built (or parsed) tree.
func (n *Node) Bytes() []byte {
	resolveTree(n)
	return Canonical(n, nil)
}

// BytesWithout returns the canonical serialization leaving out the direct child elements of n
// whose local name is skipLocal (for example "signature", to compute what gets signed).
func (n *Node) BytesWithout(skipLocal string) []byte {
	resolveTree(n)
	return Canonical(n, func(x *Node) bool { return x.Parent == n && x.Local == skipLocal })
}

// resolveTree fills parent links and namespace URIs on a tree built by hand.
func resolveTree(n *Node) {
	if sp, ok := n.lookupNS(n.Prefix); ok {
		n.Space = sp
	}
	for i := range n.Attrs {
		a := &n.Attrs[i]
		if !a.IsNS && a.Prefix != "" {
			if sp, ok := n.lookupNS(a.Prefix); ok {
				a.Space = sp
			}
		}
	}
	for _, c := range n.Children {
		c.Parent = n
		if c.Kind == ElementNode {
			resolveTree(c)
		}
	}
}

// Remove deletes the direct element children of n with the given local name.
func (n *Node) Remove(local string) {
	kept := n.Children[:0]
	for _, c := range n.Children {
		if !(c.Kind == ElementNode && c.Local == local) {
			kept = append(kept, c)
		}
	}
	n.Children = kept
}

// SetText replaces the character content of n.
func (n *Node) SetText(s string) {
	n.Children = []*Node{{Kind: TextNode, Text: s, Parent: n}}
}

// SetAttr sets (or adds) an unprefixed attribute.
func (n *Node) SetAttr(local, value string) {
	for i := range n.Attrs {
		if !n.Attrs[i].IsNS && n.Attrs[i].Prefix == "" && n.Attrs[i].Local == local {
			n.Attrs[i].Value = value
			return
		}
	}
	n.Attrs = append(n.Attrs, Attr{Local: local, Value: value})
}

// Clone returns a deep copy of the subtree at n (without a parent).
func (n *Node) Clone() *Node {
	c := *n
	c.Parent = nil
	c.Attrs = append([]Attr(nil), n.Attrs...)
	c.Children = make([]*Node, len(n.Children))
	for i, ch := range n.Children {
		cc := ch.Clone()
		cc.Parent = &c
		c.Children[i] = cc
	}
	return &c
}

// Find returns the first element at the slash-separated path of local names below n
// ("deviceID/keyIdentifier/hash"), or nil.
func (n *Node) Find(path string) *Node {
	cur := n
	// Walked segment by segment rather than split: decoders call Find on every message.
	for rest := path; ; {
		part, more, found := strings.Cut(rest, "/")
		if part != "" {
			if cur = cur.Child(part); cur == nil {
				return nil
			}
		}
		if !found {
			return cur
		}
		rest = more
	}
}
