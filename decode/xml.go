package decode

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits bound the work one body can cause. Hostile traffic passes through the proxy, so every
// dimension that grows memory or time with input is capped; a body that hits a cap becomes a
// Message of kind unknown with an error finding, and its bytes are still forwarded untouched.
type Limits struct {
	MaxBytes    int // largest body decoded at all
	MaxDepth    int // deepest element nesting
	MaxNodes    int // elements + text nodes in one document
	MaxAttrs    int // attributes (including namespace declarations) on one element
	MaxNested   int // levels of messages embedded in messages (base64 leaveDomainRequest …)
	MaxCerts    int // certificates in one chain
	MaxNameLen  int // bytes in one element or attribute name
	MaxTextSize int // bytes of one text node or attribute value
}

// DefaultLimits are generous for real DRM traffic (the largest ROAP messages, roResponses with
// many ROs, are tens of kilobytes and about 15 levels deep) and tight enough that a single body
// cannot hold a decoder for more than a few milliseconds.
var DefaultLimits = Limits{
	MaxBytes:    4 << 20,
	MaxDepth:    64,
	MaxNodes:    100_000,
	MaxAttrs:    256,
	MaxNested:   3,
	MaxCerts:    16,
	MaxNameLen:  1024,
	MaxTextSize: 4 << 20,
}

// NodeKind tells element nodes from text nodes.
type NodeKind uint8

const (
	ElementNode NodeKind = iota
	TextNode
	PINode // processing instruction inside the root; kept because canonical XML keeps them
)

// Attr is one attribute or namespace declaration as written on the wire.
type Attr struct {
	Prefix string // "" for unprefixed; "xmlns" for xmlns:p declarations
	Local  string
	Space  string // resolved namespace URI ("" for unprefixed attributes)
	Value  string // after entity and whitespace normalization
	IsNS   bool   // xmlns or xmlns:p
}

// Node is one element, text or processing-instruction node of a parsed body. Offsets index the
// body the node was parsed from, so a node's exact wire bytes are Raw[Start:End].
type Node struct {
	Kind     NodeKind
	Prefix   string // as written
	Local    string
	Space    string // resolved namespace URI; "" when unqualified or unresolvable
	Attrs    []Attr
	Children []*Node
	Parent   *Node
	Text     string // TextNode: the character data; PINode: target and data
	Start    int    // offset of '<' of the start tag (TextNode: first byte)
	End      int    // offset just past the end tag's '>' (or "/>")
	Inner    int    // offset just past the start tag (content start)
	InnerEnd int    // offset of '<' of the end tag (content end)
	// UnboundPrefix records a prefix used without a declaration in scope (tolerated).
	UnboundPrefix bool
}

// Elements returns the element children of n in document order.
func (n *Node) Elements() []*Node {
	out := make([]*Node, 0, len(n.Children))
	for _, c := range n.Children {
		if c.Kind == ElementNode {
			out = append(out, c)
		}
	}
	return out
}

// Child returns the first element child whose local name equals name (exactly), or nil.
func (n *Node) Child(name string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Kind == ElementNode && c.Local == name {
			return c
		}
	}
	return nil
}

// ChildFold is Child with a case-insensitive name match, for fields whose case drifts between
// sources (deviceId / deviceID).
func (n *Node) ChildFold(name string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Kind == ElementNode && strings.EqualFold(c.Local, name) {
			return c
		}
	}
	return nil
}

// ChildrenNamed returns every element child with the given local name.
func (n *Node) ChildrenNamed(name string) []*Node {
	if n == nil {
		return nil
	}
	var out []*Node
	for _, c := range n.Children {
		if c.Kind == ElementNode && c.Local == name {
			out = append(out, c)
		}
	}
	return out
}

// Attr returns the value of the attribute with the given local name and no namespace, and whether
// it was present.
func (n *Node) Attr(local string) (string, bool) {
	if n == nil {
		return "", false
	}
	for _, a := range n.Attrs {
		if !a.IsNS && a.Prefix == "" && a.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// AttrNS returns the value of the attribute with the given namespace URI and local name.
func (n *Node) AttrNS(space, local string) (string, bool) {
	if n == nil {
		return "", false
	}
	for _, a := range n.Attrs {
		if !a.IsNS && a.Local == local && a.Space == space {
			return a.Value, true
		}
	}
	return "", false
}

// TextContent returns the concatenated character data of n's direct text children, trimmed of
// surrounding XML white space.
func (n *Node) TextContent() string {
	if n == nil {
		return ""
	}
	if len(n.Children) == 1 && n.Children[0].Kind == TextNode {
		return strings.TrimSpace(n.Children[0].Text)
	}
	var b strings.Builder
	for _, c := range n.Children {
		if c.Kind == TextNode {
			b.WriteString(c.Text)
		}
	}
	return strings.TrimSpace(b.String())
}

// QName returns the element name as written (prefix:local).
func (n *Node) QName() string {
	if n.Prefix == "" {
		return n.Local
	}
	return n.Prefix + ":" + n.Local
}

// lookupNS resolves prefix against the declarations in scope at n.
func (n *Node) lookupNS(prefix string) (string, bool) {
	switch prefix {
	case "xml":
		return nsXML, true
	case "xmlns":
		return nsXMLNS, true
	}
	for e := n; e != nil; e = e.Parent {
		for _, a := range e.Attrs {
			if !a.IsNS {
				continue
			}
			if (prefix == "" && a.Prefix == "" && a.Local == "xmlns") || (prefix != "" && a.Prefix == "xmlns" && a.Local == prefix) {
				return a.Value, true
			}
		}
	}
	return "", prefix == ""
}

const (
	nsXML   = "http://www.w3.org/XML/1998/namespace"
	nsXMLNS = "http://www.w3.org/2000/xmlns/"
)

// Document is a parsed body.
type Document struct {
	Raw      []byte
	Root     *Node
	Prolog   bool // an XML declaration preceded the root
	BOM      bool // a UTF-8 byte order mark preceded everything
	Comments bool // comments were present (they are not part of canonical form)
	Nodes    int
}

// SyntaxError is a well-formedness or limit violation with the byte offset where it was found.
type SyntaxError struct {
	Offset int
	Msg    string
	Limit  bool // a configured limit, not a well-formedness problem
	DTD    bool // a document type declaration was refused
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg) }

type scanner struct {
	b      []byte
	i      int
	lim    Limits
	nodes  int
	doc    *Document
	scratch []byte
}

// ParseXML parses b as a namespace-aware XML document. It is deliberately tolerant of what real
// DRM peers and hand-made test data send (undeclared prefixes, tabs between attributes, a
// prolog), refuses DTDs outright (no entity can ever be expanded), and records exact byte offsets
// for every node so signatures can be cut from the wire bytes.
func ParseXML(b []byte, lim Limits) (*Document, error) {
	if len(b) > lim.MaxBytes {
		return nil, &SyntaxError{Offset: lim.MaxBytes, Msg: fmt.Sprintf("body of %d bytes exceeds the %d-byte decode limit", len(b), lim.MaxBytes), Limit: true}
	}
	s := &scanner{b: b, lim: lim, doc: &Document{Raw: b}}
	if bytes.HasPrefix(b, []byte("\xEF\xBB\xBF")) {
		s.doc.BOM = true
		s.i = 3
	}
	if !utf8.Valid(b) {
		off := 0
		for off < len(b) {
			r, n := utf8.DecodeRune(b[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return nil, &SyntaxError{Offset: off, Msg: "body is not valid UTF-8"}
	}
	if err := s.prolog(); err != nil {
		return nil, err
	}
	if s.i >= len(b) || b[s.i] != '<' {
		return nil, &SyntaxError{Offset: s.i, Msg: "no root element"}
	}
	root, err := s.element(nil, 1)
	if err != nil {
		return nil, err
	}
	s.doc.Root = root
	// Trailing misc: only white space, comments and PIs may follow the root.
	for {
		s.skipSpace()
		if s.i >= len(b) {
			break
		}
		switch {
		case bytes.HasPrefix(b[s.i:], []byte("<!--")):
			if err := s.comment(); err != nil {
				return nil, err
			}
		case bytes.HasPrefix(b[s.i:], []byte("<?")):
			if _, err := s.pi(); err != nil {
				return nil, err
			}
		default:
			return nil, &SyntaxError{Offset: s.i, Msg: "content after the root element"}
		}
	}
	s.doc.Nodes = s.nodes
	return s.doc, nil
}

func (s *scanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) prolog() error {
	for {
		s.skipSpace()
		rest := s.b[s.i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<?xml")) && len(rest) > 5 && isSpace(rest[5]):
			if s.doc.Prolog || s.i > 3 && s.nodes > 0 {
				return &SyntaxError{Offset: s.i, Msg: "misplaced XML declaration"}
			}
			s.doc.Prolog = true
			if _, err := s.pi(); err != nil {
				return err
			}
		case bytes.HasPrefix(rest, []byte("<?")):
			if _, err := s.pi(); err != nil {
				return err
			}
		case bytes.HasPrefix(rest, []byte("<!--")):
			if err := s.comment(); err != nil {
				return err
			}
		case bytes.HasPrefix(rest, []byte("<!")):
			return &SyntaxError{Offset: s.i, Msg: "document type declarations are refused (no DTD, no entity expansion)", DTD: true}
		default:
			return nil
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func isNameEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '/', '>', '=', '<', '"', '\'':
		return true
	}
	return false
}

func (s *scanner) comment() error {
	end := bytes.Index(s.b[s.i+4:], []byte("-->"))
	if end < 0 {
		return &SyntaxError{Offset: s.i, Msg: "unterminated comment"}
	}
	s.doc.Comments = true
	s.i += 4 + end + 3
	return nil
}

func (s *scanner) pi() (string, error) {
	end := bytes.Index(s.b[s.i+2:], []byte("?>"))
	if end < 0 {
		return "", &SyntaxError{Offset: s.i, Msg: "unterminated processing instruction"}
	}
	body := string(s.b[s.i+2 : s.i+2+end])
	s.i += 2 + end + 2
	return body, nil
}

func (s *scanner) name() (string, error) {
	start := s.i
	for s.i < len(s.b) && !isNameEnd(s.b[s.i]) {
		s.i++
	}
	if s.i == start {
		return "", &SyntaxError{Offset: s.i, Msg: "expected a name"}
	}
	if s.i-start > s.lim.MaxNameLen {
		return "", &SyntaxError{Offset: start, Msg: "name longer than the limit", Limit: true}
	}
	return string(s.b[start:s.i]), nil
}

func splitQName(q string) (prefix, local string) {
	if i := strings.IndexByte(q, ':'); i > 0 && i < len(q)-1 {
		return q[:i], q[i+1:]
	}
	return "", q
}

func (s *scanner) countNode() error {
	s.nodes++
	if s.nodes > s.lim.MaxNodes {
		return &SyntaxError{Offset: s.i, Msg: fmt.Sprintf("more than %d nodes", s.lim.MaxNodes), Limit: true}
	}
	return nil
}

// element parses one element starting at '<' and returns it with its subtree.
func (s *scanner) element(parent *Node, depth int) (*Node, error) {
	if depth > s.lim.MaxDepth {
		return nil, &SyntaxError{Offset: s.i, Msg: fmt.Sprintf("elements nested deeper than %d", s.lim.MaxDepth), Limit: true}
	}
	if err := s.countNode(); err != nil {
		return nil, err
	}
	n := &Node{Kind: ElementNode, Parent: parent, Start: s.i}
	s.i++ // '<'
	qn, err := s.name()
	if err != nil {
		return nil, err
	}
	n.Prefix, n.Local = splitQName(qn)
	empty := false
	for {
		s.skipSpace()
		if s.i >= len(s.b) {
			return nil, &SyntaxError{Offset: s.i, Msg: "unterminated start tag <" + qn}
		}
		c := s.b[s.i]
		if c == '>' {
			s.i++
			break
		}
		if c == '/' {
			if s.i+1 < len(s.b) && s.b[s.i+1] == '>' {
				s.i += 2
				empty = true
				break
			}
			return nil, &SyntaxError{Offset: s.i, Msg: "stray '/' in start tag <" + qn}
		}
		if len(n.Attrs) >= s.lim.MaxAttrs {
			return nil, &SyntaxError{Offset: s.i, Msg: "too many attributes", Limit: true}
		}
		an, err := s.name()
		if err != nil {
			return nil, err
		}
		s.skipSpace()
		if s.i >= len(s.b) || s.b[s.i] != '=' {
			return nil, &SyntaxError{Offset: s.i, Msg: "attribute " + an + " has no value"}
		}
		s.i++
		s.skipSpace()
		if s.i >= len(s.b) || (s.b[s.i] != '"' && s.b[s.i] != '\'') {
			return nil, &SyntaxError{Offset: s.i, Msg: "attribute " + an + " value is not quoted"}
		}
		q := s.b[s.i]
		s.i++
		vs := s.i
		ve := bytes.IndexByte(s.b[vs:], q)
		if ve < 0 {
			return nil, &SyntaxError{Offset: vs, Msg: "unterminated attribute value"}
		}
		raw := s.b[vs : vs+ve]
		s.i = vs + ve + 1
		if bytes.IndexByte(raw, '<') >= 0 {
			return nil, &SyntaxError{Offset: vs, Msg: "'<' in attribute value"}
		}
		val, err := s.unescape(raw, vs, true)
		if err != nil {
			return nil, err
		}
		a := Attr{Value: val}
		a.Prefix, a.Local = splitQName(an)
		if an == "xmlns" {
			a.IsNS, a.Prefix, a.Local = true, "", "xmlns"
		} else if a.Prefix == "xmlns" {
			a.IsNS = true
		}
		for _, o := range n.Attrs {
			if o.Prefix == a.Prefix && o.Local == a.Local {
				return nil, &SyntaxError{Offset: vs, Msg: "duplicate attribute " + an}
			}
		}
		n.Attrs = append(n.Attrs, a)
	}
	// Resolve the element's and attributes' namespaces now that its declarations are known.
	if sp, ok := n.lookupNS(n.Prefix); ok {
		n.Space = sp
	} else {
		n.UnboundPrefix = true
	}
	for i := range n.Attrs {
		a := &n.Attrs[i]
		if a.IsNS || a.Prefix == "" {
			continue
		}
		if sp, ok := n.lookupNS(a.Prefix); ok {
			a.Space = sp
		} else {
			n.UnboundPrefix = true
		}
	}
	n.Inner = s.i
	if empty {
		n.End, n.InnerEnd = s.i, s.i
		return n, nil
	}
	for {
		if s.i >= len(s.b) {
			return nil, &SyntaxError{Offset: s.i, Msg: "missing end tag </" + qn + ">"}
		}
		if s.b[s.i] != '<' {
			ts := s.i
			te := bytes.IndexByte(s.b[ts:], '<')
			if te < 0 {
				te = len(s.b) - ts
			}
			raw := s.b[ts : ts+te]
			s.i = ts + te
			if len(raw) > s.lim.MaxTextSize {
				return nil, &SyntaxError{Offset: ts, Msg: "text node larger than the limit", Limit: true}
			}
			txt, err := s.unescape(raw, ts, false)
			if err != nil {
				return nil, err
			}
			if err := s.appendText(n, txt, ts, s.i); err != nil {
				return nil, err
			}
			continue
		}
		rest := s.b[s.i:]
		switch {
		case bytes.HasPrefix(rest, []byte("</")):
			es := s.i
			s.i += 2
			en, err := s.name()
			if err != nil {
				return nil, err
			}
			s.skipSpace()
			if s.i >= len(s.b) || s.b[s.i] != '>' {
				return nil, &SyntaxError{Offset: s.i, Msg: "malformed end tag </" + en}
			}
			s.i++
			if en != qn {
				return nil, &SyntaxError{Offset: es, Msg: fmt.Sprintf("end tag </%s> does not match <%s>", en, qn)}
			}
			n.InnerEnd, n.End = es, s.i
			return n, nil
		case bytes.HasPrefix(rest, []byte("<!--")):
			if err := s.comment(); err != nil {
				return nil, err
			}
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			cs := s.i
			ce := bytes.Index(rest[9:], []byte("]]>"))
			if ce < 0 {
				return nil, &SyntaxError{Offset: cs, Msg: "unterminated CDATA section"}
			}
			txt := string(rest[9 : 9+ce])
			s.i += 9 + ce + 3
			if err := s.appendText(n, normalizeNewlines(txt), cs, s.i); err != nil {
				return nil, err
			}
		case bytes.HasPrefix(rest, []byte("<!")):
			return nil, &SyntaxError{Offset: s.i, Msg: "markup declaration inside an element", DTD: true}
		case bytes.HasPrefix(rest, []byte("<?")):
			ps := s.i
			body, err := s.pi()
			if err != nil {
				return nil, err
			}
			if err := s.countNode(); err != nil {
				return nil, err
			}
			n.Children = append(n.Children, &Node{Kind: PINode, Text: body, Parent: n, Start: ps, End: s.i})
		default:
			c, err := s.element(n, depth+1)
			if err != nil {
				return nil, err
			}
			n.Children = append(n.Children, c)
		}
	}
}

// appendText merges adjacent character data (text and CDATA) into one text node, as the XPath
// data model that canonical XML is defined on does.
func (s *scanner) appendText(n *Node, txt string, start, end int) error {
	if k := len(n.Children); k > 0 && n.Children[k-1].Kind == TextNode {
		last := n.Children[k-1]
		last.Text += txt
		last.End = end
		return nil
	}
	if err := s.countNode(); err != nil {
		return err
	}
	n.Children = append(n.Children, &Node{Kind: TextNode, Text: txt, Parent: n, Start: start, End: end})
	return nil
}

func normalizeNewlines(s string) string {
	if strings.IndexByte(s, '\r') < 0 {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// unescape resolves the predefined and character references and applies XML end-of-line
// handling; in attribute values literal white space becomes a space (attribute-value
// normalization for CDATA attributes). Unknown entities are errors: without a DTD none exist.
func (s *scanner) unescape(raw []byte, off int, attr bool) (string, error) {
	if bytes.IndexByte(raw, '&') < 0 && bytes.IndexByte(raw, '\r') < 0 && (!attr || (bytes.IndexByte(raw, '\t') < 0 && bytes.IndexByte(raw, '\n') < 0)) {
		return string(raw), nil
	}
	out := s.scratch[:0]
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '&':
			semi := bytes.IndexByte(raw[i:], ';')
			if semi < 0 || semi > 12 {
				return "", &SyntaxError{Offset: off + i, Msg: "unterminated entity reference"}
			}
			ref := string(raw[i+1 : i+semi])
			switch ref {
			case "lt":
				out = append(out, '<')
			case "gt":
				out = append(out, '>')
			case "amp":
				out = append(out, '&')
			case "apos":
				out = append(out, '\'')
			case "quot":
				out = append(out, '"')
			default:
				if !strings.HasPrefix(ref, "#") {
					return "", &SyntaxError{Offset: off + i, Msg: "undefined entity &" + ref + ";"}
				}
				var v uint64
				var err error
				if strings.HasPrefix(ref, "#x") {
					v, err = strconv.ParseUint(ref[2:], 16, 32)
				} else {
					v, err = strconv.ParseUint(ref[1:], 10, 32)
				}
				if err != nil || !isXMLChar(rune(v)) {
					return "", &SyntaxError{Offset: off + i, Msg: "invalid character reference &" + ref + ";"}
				}
				out = utf8.AppendRune(out, rune(v))
			}
			i += semi
		case c == '\r':
			if i+1 < len(raw) && raw[i+1] == '\n' {
				i++
			}
			if attr {
				out = append(out, ' ')
			} else {
				out = append(out, '\n')
			}
		case attr && (c == '\t' || c == '\n'):
			out = append(out, ' ')
		default:
			out = append(out, c)
		}
	}
	s.scratch = out
	return string(out), nil
}

func isXMLChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}
