package decode

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
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
	Kind NodeKind
	// UnboundPrefix records a prefix used without a declaration in scope (tolerated). It sits
	// beside Kind so the two share one word: documents hold thousands of nodes.
	UnboundPrefix bool
	Prefix        string // as written
	Local         string
	Space         string // resolved namespace URI; "" when unqualified or unresolvable
	Attrs         []Attr
	Children      []*Node
	Parent        *Node
	Text          string // TextNode: the character data; PINode: target and data
	Start         int    // offset of '<' of the start tag (TextNode: first byte)
	End           int    // offset just past the end tag's '>' (or "/>")
	Inner         int    // offset just past the start tag (content start)
	InnerEnd      int    // offset of '<' of the end tag (content end)
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
	for c := range n.EachNamed(name) {
		out = append(out, c)
	}
	return out
}

// EachNamed yields, in order, the element children whose local name equals name, without the
// slice ChildrenNamed builds.
func (n *Node) EachNamed(name string) iter.Seq[*Node] {
	return func(yield func(*Node) bool) {
		if n == nil {
			return
		}
		for _, c := range n.Children {
			if c.Kind == ElementNode && c.Local == name && !yield(c) {
				return
			}
		}
	}
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
	unbound  bool // some node has UnboundPrefix (so decoders need not walk the tree to know)
	Nodes    int
	arena    *arena // where the first nodes, child lists and attributes live (see Recycle)
}

// SyntaxError is a well-formedness or limit violation with the byte offset where it was found.
type SyntaxError struct {
	Offset int
	Msg    string
	Limit  bool // a configured limit, not a well-formedness problem
	DTD    bool // a document type declaration was refused
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg) }

// scanner holds the state of one ParseXML call. Names, attribute values and text without
// references are substrings of one string copy of the body, and nodes, child lists and attribute
// lists are carved from a few shared blocks, so a typical message costs a dozen allocations
// rather than several per element.
type scanner struct {
	b     []byte
	s     string // string copy of b
	i     int
	lim   Limits
	nodes int
	doc   *Document

	scratch []byte      // unescape output
	run     []byte      // character data run that spans CDATA sections or comments
	scope   []nsBinding // namespace declarations in scope, innermost last
	kids    []*Node     // children being collected, a stack shared by all open elements
	attrBuf []Attr      // attributes of the start tag being read
	attrOff []int       // offsets of their names, for error messages
	dupIdx  []int       // attribute indexes, sorted when checking many attributes for duplicates

	slab      []Node // unused nodes of the current block
	kidPool   []*Node
	attrPool  []Attr
	chunk     int // nodes in the next block (see blockSizes)
	moreNodes int // nodes in blocks after the first
	kidChunk  int // child pointers per block
	attrChunk int // attributes per block
	// Child pointers and attributes kept in all, and how many of the arena's were used when
	// the scanner moved on from its block (-1: it never did).
	kidsMade, attrsMade int
	usedKids, usedAttrs int
}

// ParseXML parses b as a namespace-aware XML document. It is deliberately tolerant of what real
// DRM peers and hand-made test data send (undeclared prefixes, tabs between attributes, a
// prolog), refuses DTDs outright (no entity can ever be expanded), and records exact byte offsets
// for every node so signatures can be cut from the wire bytes. The Document shares b's memory:
// b must not be modified while the Document is in use.
func ParseXML(b []byte, lim Limits) (*Document, error) {
	if len(b) > lim.MaxBytes {
		return nil, &SyntaxError{Offset: lim.MaxBytes, Msg: fmt.Sprintf("body of %d bytes exceeds the %d-byte decode limit", len(b), lim.MaxBytes), Limit: true}
	}
	// Characters are checked before anything is copied, so binary junk costs no allocation.
	if off, msg := checkChars(b); off >= 0 {
		return nil, &SyntaxError{Offset: off, Msg: msg}
	}
	sc := scanScratchPool.Get().(*scanScratch)
	// The scanner's string view shares b's memory: names and text are substrings of it, so a
	// parsed message costs no second copy of its body. Document.Raw already aliases b, so the
	// contract is unchanged: b must not be modified while the Document is in use.
	s := &scanner{b: b, s: unsafe.String(unsafe.SliceData(b), len(b)), lim: lim, doc: &Document{Raw: b},
		scratch: sc.unesc[:0], run: sc.run[:0], scope: sc.scope[:0], kids: sc.kids[:0],
		attrBuf: sc.attrs[:0], attrOff: sc.offs[:0], dupIdx: sc.dupIdx[:0]}
	a := newArena(b)
	s.slab, s.kidPool, s.attrPool = a.nodes, a.kids[:0], a.attrs[:0]
	s.usedKids, s.usedAttrs = -1, -1
	doc, err := s.parse()
	sc.keep(s)
	scanScratchPool.Put(sc)
	a.usedNodes, a.needNodes = min(s.nodes, len(a.nodes)), s.nodes
	a.usedKids, a.needKids = s.usedKids, s.kidsMade
	if a.usedKids < 0 {
		a.usedKids = len(s.kidPool)
	}
	a.usedAttrs, a.needAttrs = s.usedAttrs, s.attrsMade
	if a.usedAttrs < 0 {
		a.usedAttrs = len(s.attrPool)
	}
	if err != nil {
		// Nothing refers to the nodes of a document that failed to parse.
		a.release(RecycleMode(recycleMode.Load()))
		return nil, err
	}
	doc.arena = a
	return doc, nil
}

// blockSizes returns how many nodes, child pointers and attributes the first blocks of a
// document get, from counts of single bytes (one vectorized pass each; finding exact figures
// cost more than the memory they saved). An element has a start and an end tag, so there are
// about half as many elements as '<'; leaves add text nodes, which the second, smaller node
// block takes (canonical messages need at most that one, pretty-printed ones a few). Every
// attribute value is quoted, and ROAP text holds no quotes, so quotes give attributes closely.
func blockSizes(b []byte) (nodes, kids, attrs int) {
	lt := bytes.Count(b, []byte{'<'})
	quotes := bytes.Count(b, []byte{'"'}) + bytes.Count(b, []byte{'\''})
	return min(max(lt/2+8, 16), 512), min(max(lt*3/4+4, 16), 512), min(max(quotes/2, 4), 256)
}

// scanScratch is the working memory of a scanner that does not end up in the Document. It is
// pooled, so the stacks do not regrow from nothing on every call.
type scanScratch struct {
	unesc, run   []byte
	scope        []nsBinding
	kids         []*Node
	attrs        []Attr
	offs, dupIdx []int
}

var scanScratchPool = sync.Pool{New: func() any { return new(scanScratch) }}

// keep takes the scanner's buffers back for the next call. Whatever could point into this body
// or its nodes is cleared, so a pooled buffer never keeps a message alive, and buffers a hostile
// body made large are dropped rather than pooled.
func (sc *scanScratch) keep(s *scanner) {
	const most = 1024
	clear(s.scope[:cap(s.scope)])
	clear(s.kids[:cap(s.kids)])
	clear(s.attrBuf[:cap(s.attrBuf)])
	sc.unesc, sc.run, sc.scope, sc.kids, sc.attrs, sc.offs, sc.dupIdx = s.scratch, s.run, s.scope, s.kids, s.attrBuf, s.attrOff, s.dupIdx
	if cap(sc.unesc) > 64*most {
		sc.unesc = nil
	}
	if cap(sc.run) > 64*most {
		sc.run = nil
	}
	if cap(sc.scope) > most || cap(sc.kids) > most || cap(sc.attrs) > most || cap(sc.offs) > most || cap(sc.dupIdx) > most {
		sc.scope, sc.kids, sc.attrs, sc.offs, sc.dupIdx = nil, nil, nil, nil, nil
	}
}

func (s *scanner) parse() (*Document, error) {
	b := s.b
	if bytes.HasPrefix(b, []byte("\xEF\xBB\xBF")) {
		s.doc.BOM = true
		s.i = 3
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
			if _, err := s.pi(false); err != nil {
				return nil, err
			}
		default:
			return nil, &SyntaxError{Offset: s.i, Msg: "content after the root element"}
		}
	}
	s.doc.Nodes = s.nodes
	return s.doc, nil
}

// checkChars returns the offset of the first byte that cannot start an XML 1.0 character (invalid
// UTF-8, C0 controls other than tab/LF/CR, U+FFFE, U+FFFF) and a message, or -1. Eight ASCII
// bytes at a time take the fast path: DRM messages are almost entirely printable ASCII.
func checkChars(b []byte) (int, string) {
	const hi = 0x8080808080808080
	const lo = 0x2020202020202020
	i := 0
	for i < len(b) {
		// Four words per round while they are all fine: the loop's own overhead was most of its cost.
		for i+32 <= len(b) {
			c := b[i : i+32 : i+32]
			w0, w1 := binary.LittleEndian.Uint64(c), binary.LittleEndian.Uint64(c[8:])
			w2, w3 := binary.LittleEndian.Uint64(c[16:]), binary.LittleEndian.Uint64(c[24:])
			if (w0|w1|w2|w3)&hi != 0 || ((w0-lo)&^w0|(w1-lo)&^w1|(w2-lo)&^w2|(w3-lo)&^w3)&hi != 0 {
				break
			}
			i += 32
		}
		if i >= len(b) {
			break
		}
		if i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			if w&hi == 0 && (w-lo)&^w&hi == 0 {
				i += 8
				continue
			}
		}
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
	// The XML declaration is only one if it is the very first thing (after a BOM).
	if rest := s.b[s.i:]; bytes.HasPrefix(rest, []byte("<?xml")) && len(rest) > 5 && (isSpace(rest[5]) || rest[5] == '?') {
		start := s.i
		body, err := s.pi(true)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(body, "xml version") {
			return &SyntaxError{Offset: start, Msg: "XML declaration without a version"}
		}
		s.doc.Prolog = true
	}
	for {
		s.skipSpace()
		rest := s.b[s.i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<?")):
			if _, err := s.pi(false); err != nil {
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

// nameClass classifies bytes for XML names: bit 1 may start a name, bit 2 may continue one.
// Bytes of multi-byte UTF-8 sequences are accepted as name characters without checking the XML
// name ranges; ASCII, where every real confusion happens, is checked exactly.
var nameClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':', c >= 0x80:
			t[c] = 3
		case c >= '0' && c <= '9', c == '-', c == '.':
			t[c] = 2
		}
	}
	return t
}()

func validName(n string) bool {
	if n == "" || nameClass[n[0]]&1 == 0 {
		return false
	}
	for i := 1; i < len(n); i++ {
		if nameClass[n[i]]&2 == 0 {
			return false
		}
	}
	return true
}

// comment skips a comment starting at "<!--".
func (s *scanner) comment() error {
	start := s.i
	body := s.s[s.i+4:]
	end := strings.Index(body, "-->")
	if end < 0 {
		return &SyntaxError{Offset: start, Msg: "unterminated comment"}
	}
	if k := strings.Index(body[:end], "--"); k >= 0 || (end > 0 && body[end-1] == '-') {
		if k < 0 {
			k = end - 1
		}
		return &SyntaxError{Offset: start + 4 + k, Msg: "'--' inside a comment"}
	}
	s.doc.Comments = true
	s.i += 4 + end + 3
	return nil
}

// pi reads a processing instruction starting at "<?" and returns it as canonical XML writes it:
// the target, and when there is data, one space and the data with its leading white space
// removed. The reserved target xml is only accepted where the caller allows a declaration.
func (s *scanner) pi(allowDecl bool) (string, error) {
	start := s.i
	end := strings.Index(s.s[s.i+2:], "?>")
	if end < 0 {
		return "", &SyntaxError{Offset: start, Msg: "unterminated processing instruction"}
	}
	body := s.s[s.i+2 : s.i+2+end]
	s.i += 2 + end + 2
	t := 0
	for t < len(body) && !isSpace(body[t]) {
		t++
	}
	target := body[:t]
	if !validName(target) {
		return "", &SyntaxError{Offset: start + 2, Msg: fmt.Sprintf("processing instruction target %q is not a name", target)}
	}
	if strings.EqualFold(target, "xml") && !allowDecl {
		return "", &SyntaxError{Offset: start, Msg: "an XML declaration is only allowed at the start of the body"}
	}
	d := t
	for d < len(body) && isSpace(body[d]) {
		d++
	}
	data := body[d:]
	switch {
	case data == "":
		return target, nil
	case d == t+1 && body[t] == ' ' && strings.IndexByte(data, '\r') < 0:
		return body, nil
	}
	return target + " " + normalizeNewlines(data), nil
}

func (s *scanner) name() (string, error) {
	start := s.i
	b := s.b
	if start >= len(b) || nameClass[b[start]]&1 == 0 {
		return "", &SyntaxError{Offset: start, Msg: "expected a name"}
	}
	// A local index keeps the loop in registers; this is the scanner's hottest loop.
	i := start + 1
	for i < len(b) && nameClass[b[i]]&2 != 0 {
		i++
	}
	s.i = i
	if i-start > s.lim.MaxNameLen {
		return "", &SyntaxError{Offset: start, Msg: "name longer than the limit", Limit: true}
	}
	return s.s[start:i], nil
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

func (s *scanner) newNode() *Node {
	if len(s.slab) == 0 {
		s.sizeOverflow()
		s.slab = make([]Node, s.chunk)
		s.chunk = s.moreNodes
	}
	n := &s.slab[0]
	s.slab = s.slab[1:]
	return n
}

// sizeOverflow sizes the blocks for what does not fit in the document's arena, once: from the
// markup, less what the arena already took, so a large document in a small recycled arena
// still costs a few blocks rather than many small ones.
func (s *scanner) sizeOverflow() {
	if s.chunk > 0 {
		return
	}
	n, k, at := blockSizes(s.b)
	s.chunk, s.moreNodes = max(n-s.nodes, 16), max(n/4, 16)
	s.kidChunk, s.attrChunk = max(k-s.kidsMade, 16), max(at-s.attrsMade, 4)
}

// keepKids moves the children collected since base into shared storage. The result's capacity
// equals its length, so appending to a parsed node's Children never overwrites a neighbour's.
func (s *scanner) keepKids(base int) []*Node {
	k := s.kids[base:]
	if len(k) == 0 {
		return nil
	}
	s.kidsMade += len(k)
	if cap(s.kidPool)-len(s.kidPool) < len(k) {
		if s.usedKids < 0 {
			s.usedKids = len(s.kidPool)
		}
		s.sizeOverflow()
		s.kidPool = make([]*Node, 0, max(len(k), s.kidChunk))
	}
	at := len(s.kidPool)
	s.kidPool = append(s.kidPool, k...)
	clear(s.kids[base:])
	s.kids = s.kids[:base]
	return s.kidPool[at:len(s.kidPool):len(s.kidPool)]
}

func (s *scanner) keepAttrs(a []Attr) []Attr {
	if len(a) == 0 {
		return nil
	}
	s.attrsMade += len(a)
	if cap(s.attrPool)-len(s.attrPool) < len(a) {
		if s.usedAttrs < 0 {
			s.usedAttrs = len(s.attrPool)
		}
		s.sizeOverflow()
		s.attrPool = make([]Attr, 0, max(len(a), s.attrChunk))
	}
	at := len(s.attrPool)
	s.attrPool = append(s.attrPool, a...)
	return s.attrPool[at:len(s.attrPool):len(s.attrPool)]
}

// resolve looks prefix up among the declarations in scope.
func (s *scanner) resolve(prefix string) (string, bool) {
	switch prefix {
	case "xml":
		return nsXML, true
	case "xmlns":
		return nsXMLNS, true
	}
	for i := len(s.scope) - 1; i >= 0; i-- {
		if s.scope[i].prefix == prefix {
			return s.scope[i].uri, true
		}
	}
	return "", prefix == ""
}

// declaredPrefix returns the prefix an xmlns attribute declares ("" for the default namespace).
func (a *Attr) declaredPrefix() string {
	if a.Prefix == "" {
		return ""
	}
	return a.Local
}

// element parses one element starting at '<' and returns it with its subtree. Recursion is
// bounded by MaxDepth, checked before anything else.
func (s *scanner) element(parent *Node, depth int) (*Node, error) {
	if depth > s.lim.MaxDepth {
		return nil, &SyntaxError{Offset: s.i, Msg: fmt.Sprintf("elements nested deeper than %d", s.lim.MaxDepth), Limit: true}
	}
	if err := s.countNode(); err != nil {
		return nil, err
	}
	n := s.newNode()
	n.Kind, n.Parent, n.Start = ElementNode, parent, s.i
	s.i++ // '<'
	qn, err := s.name()
	if err != nil {
		return nil, err
	}
	n.Prefix, n.Local = splitQName(qn)
	attrs, offs := s.attrBuf[:0], s.attrOff[:0]
	empty := false
	for {
		before := s.i
		s.skipSpace()
		if s.i >= len(s.b) {
			return nil, &SyntaxError{Offset: s.i, Msg: fmt.Sprintf("unterminated start tag <%s> (opened at offset %d)", qn, n.Start)}
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
			return nil, &SyntaxError{Offset: s.i, Msg: "stray '/' in start tag <" + qn + ">"}
		}
		if s.i == before {
			return nil, &SyntaxError{Offset: s.i, Msg: fmt.Sprintf("unexpected %q in start tag <%s> (attributes must be separated by white space)", c, qn)}
		}
		if len(attrs) >= s.lim.MaxAttrs {
			return nil, &SyntaxError{Offset: s.i, Msg: fmt.Sprintf("more than %d attributes on <%s>", s.lim.MaxAttrs, qn), Limit: true}
		}
		offs = append(offs, s.i)
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
		vs := s.i + 1
		ve := bytes.IndexByte(s.b[vs:], q)
		if ve < 0 {
			return nil, &SyntaxError{Offset: vs, Msg: "unterminated value of attribute " + an}
		}
		ve += vs
		if lt := bytes.IndexByte(s.b[vs:ve], '<'); lt >= 0 {
			return nil, &SyntaxError{Offset: vs + lt, Msg: "'<' in the value of attribute " + an}
		}
		if ve-vs > s.lim.MaxTextSize {
			return nil, &SyntaxError{Offset: vs, Msg: "attribute value larger than the limit", Limit: true}
		}
		s.i = ve + 1
		val, err := s.unescape(vs, ve, true)
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
		attrs = append(attrs, a)
	}
	// Declarations first, then the element's and attributes' namespaces can be resolved.
	scopeBase := len(s.scope)
	for i := range attrs {
		if attrs[i].IsNS {
			s.scope = append(s.scope, nsBinding{attrs[i].declaredPrefix(), attrs[i].Value})
		}
	}
	// In-scope declarations are bounded too: every prefix lookup scans them.
	if len(s.scope) > s.lim.MaxAttrs {
		return nil, &SyntaxError{Offset: n.Start, Msg: fmt.Sprintf("more than %d namespace declarations in scope", s.lim.MaxAttrs), Limit: true}
	}
	if sp, ok := s.resolve(n.Prefix); ok {
		n.Space = sp
	} else {
		n.UnboundPrefix = true
		s.doc.unbound = true
	}
	for i := range attrs {
		a := &attrs[i]
		if a.IsNS || a.Prefix == "" {
			continue
		}
		if sp, ok := s.resolve(a.Prefix); ok {
			a.Space = sp
		} else {
			n.UnboundPrefix = true
			s.doc.unbound = true
		}
	}
	if len(attrs) > 1 {
		if err := s.checkDuplicates(n, attrs, offs); err != nil {
			return nil, err
		}
	}
	n.Attrs = s.keepAttrs(attrs)
	s.attrBuf, s.attrOff = attrs[:0], offs[:0]
	n.Inner = s.i
	if empty {
		n.End, n.InnerEnd = s.i, s.i
		s.scope = s.scope[:scopeBase]
		return n, nil
	}

	kb := len(s.kids)
	// A run of character data: text pieces, CDATA sections and the comments between them make
	// one text node, as in the XPath data model canonical XML is defined on.
	runStart, runEnd, runRaw := -1, 0, 0
	runText, runMulti := "", false
	flush := func() error {
		if runStart < 0 {
			return nil
		}
		if err := s.countNode(); err != nil {
			return err
		}
		t := s.newNode()
		t.Kind, t.Parent, t.Start, t.End = TextNode, n, runStart, runEnd
		if runMulti {
			t.Text = string(s.run)
		} else {
			t.Text = runText
		}
		s.kids = append(s.kids, t)
		runStart, runRaw, runMulti = -1, 0, false
		return nil
	}
	addText := func(txt string, start, end int) error {
		runRaw += end - start
		if runRaw > s.lim.MaxTextSize {
			return &SyntaxError{Offset: start, Msg: "text node larger than the limit", Limit: true}
		}
		switch {
		case runStart < 0:
			runStart, runText = start, txt
		case !runMulti:
			runMulti = true
			s.run = append(append(s.run[:0], runText...), txt...)
		default:
			s.run = append(s.run, txt...)
		}
		runEnd = end
		return nil
	}
	for {
		if s.i >= len(s.b) {
			return nil, &SyntaxError{Offset: s.i, Msg: fmt.Sprintf("missing end tag </%s> for the element opened at offset %d", qn, n.Start)}
		}
		if s.b[s.i] != '<' {
			ts := s.i
			te := bytes.IndexByte(s.b[ts:], '<')
			if te < 0 {
				te = len(s.b) - ts
			}
			s.i = ts + te
			txt, err := s.unescape(ts, s.i, false)
			if err != nil {
				return nil, err
			}
			if err := addText(txt, ts, s.i); err != nil {
				return nil, err
			}
			continue
		}
		var next byte
		if s.i+1 < len(s.b) {
			next = s.b[s.i+1]
		}
		switch next {
		case '/':
			if err := flush(); err != nil {
				return nil, err
			}
			es := s.i
			s.i += 2
			// The end tag nearly always repeats the start tag's name: compare it in place
			// rather than scanning it byte by byte (name checks it otherwise).
			var en string
			if rest := s.s[s.i:]; len(rest) > len(qn) && rest[:len(qn)] == qn && nameClass[rest[len(qn)]]&2 == 0 {
				en = qn
				s.i += len(qn)
			} else if en, err = s.name(); err != nil {
				return nil, err
			}
			s.skipSpace()
			if s.i >= len(s.b) || s.b[s.i] != '>' {
				return nil, &SyntaxError{Offset: s.i, Msg: "malformed end tag </" + en}
			}
			s.i++
			if en != qn {
				return nil, &SyntaxError{Offset: es, Msg: fmt.Sprintf("end tag </%s> does not match <%s> opened at offset %d", en, qn, n.Start)}
			}
			n.InnerEnd, n.End = es, s.i
			n.Children = s.keepKids(kb)
			s.scope = s.scope[:scopeBase]
			return n, nil
		case '!':
			rest := s.b[s.i:]
			switch {
			case bytes.HasPrefix(rest, []byte("<!--")):
				if err := s.comment(); err != nil {
					return nil, err
				}
			case bytes.HasPrefix(rest, []byte("<![CDATA[")):
				cs := s.i
				ce := strings.Index(s.s[cs+9:], "]]>")
				if ce < 0 {
					return nil, &SyntaxError{Offset: cs, Msg: "unterminated CDATA section"}
				}
				s.i = cs + 9 + ce + 3
				if err := addText(normalizeNewlines(s.s[cs+9:cs+9+ce]), cs, s.i); err != nil {
					return nil, err
				}
			default:
				return nil, &SyntaxError{Offset: s.i, Msg: "markup declaration inside an element", DTD: true}
			}
		case '?':
			if err := flush(); err != nil {
				return nil, err
			}
			ps := s.i
			body, err := s.pi(false)
			if err != nil {
				return nil, err
			}
			if err := s.countNode(); err != nil {
				return nil, err
			}
			p := s.newNode()
			p.Kind, p.Text, p.Parent, p.Start, p.End = PINode, body, n, ps, s.i
			s.kids = append(s.kids, p)
		default:
			if err := flush(); err != nil {
				return nil, err
			}
			c, err := s.element(n, depth+1)
			if err != nil {
				return nil, err
			}
			s.kids = append(s.kids, c)
		}
	}
}

// checkDuplicates refuses an attribute written twice, and (Namespaces in XML §6.3) two
// attributes with the same local name whose prefixes are bound to the same namespace.
func (s *scanner) checkDuplicates(n *Node, attrs []Attr, offs []int) error {
	dup := func(i, j int) bool {
		a, b := &attrs[i], &attrs[j]
		if a.Local != b.Local {
			return false
		}
		return a.Prefix == b.Prefix || (a.Space != "" && a.Space == b.Space && !a.IsNS && !b.IsNS)
	}
	report := func(j int) error {
		name := attrs[j].Local
		if attrs[j].Prefix != "" {
			name = attrs[j].Prefix + ":" + name
		}
		return &SyntaxError{Offset: offs[j], Msg: fmt.Sprintf("duplicate attribute %s on <%s>", name, n.QName())}
	}
	if len(attrs) <= 16 {
		for j := 1; j < len(attrs); j++ {
			for i := 0; i < j; i++ {
				if dup(i, j) {
					return report(j)
				}
			}
		}
		return nil
	}
	// Many attributes: sort indexes by local name so duplicates are neighbours (same local
	// name), keeping the check O(k log k) for hostile inputs.
	idx := s.dupIdx[:0]
	for i := range attrs {
		idx = append(idx, i)
	}
	slices.SortFunc(idx, func(x, y int) int { return strings.Compare(attrs[x].Local, attrs[y].Local) })
	s.dupIdx = idx
	for lo := 0; lo < len(idx); {
		hi := lo + 1
		for hi < len(idx) && attrs[idx[hi]].Local == attrs[idx[lo]].Local {
			hi++
		}
		for j := lo + 1; j < hi; j++ {
			for i := lo; i < j; i++ {
				if dup(idx[i], idx[j]) {
					return report(max(idx[i], idx[j]))
				}
			}
		}
		lo = hi
	}
	return nil
}

func normalizeNewlines(s string) string {
	if strings.IndexByte(s, '\r') < 0 {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// unescape returns the character data of s.s[start:end]: predefined and character references
// resolved, XML end-of-line handling applied and, in attribute values, literal white space turned
// into spaces (attribute-value normalization for CDATA attributes). Unknown entities are errors:
// without a DTD none exist. Data without references is returned as a substring, without copying.
func (s *scanner) unescape(start, end int, attr bool) (string, error) {
	raw := s.s[start:end]
	if strings.IndexByte(raw, '&') < 0 && strings.IndexByte(raw, '\r') < 0 &&
		(!attr || (strings.IndexByte(raw, '\t') < 0 && strings.IndexByte(raw, '\n') < 0)) {
		return raw, nil
	}
	out := s.scratch[:0]
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '&':
			semi := strings.IndexByte(raw[i:], ';')
			if semi < 0 {
				return "", &SyntaxError{Offset: start + i, Msg: "unterminated entity reference"}
			}
			ref := raw[i+1 : i+semi]
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
				shown := ref
				if len(shown) > 24 {
					shown = shown[:24] + "…"
				}
				if !strings.HasPrefix(ref, "#") {
					return "", &SyntaxError{Offset: start + i, Msg: "undefined entity &" + shown + "; (no DTD, so only the predefined entities exist)"}
				}
				v, ok := parseCharRef(ref[1:])
				if !ok {
					return "", &SyntaxError{Offset: start + i, Msg: "invalid character reference &" + shown + ";"}
				}
				out = utf8.AppendRune(out, v)
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

// parseCharRef parses the part of a character reference after '#': decimal digits, or 'x' and
// hexadecimal digits, naming an XML Char.
func parseCharRef(ref string) (rune, bool) {
	base := 10
	if strings.HasPrefix(ref, "x") {
		base, ref = 16, ref[1:]
	}
	if ref == "" {
		return 0, false
	}
	var v rune
	for i := 0; i < len(ref); i++ {
		var d rune
		c := ref[i]
		switch {
		case c >= '0' && c <= '9':
			d = rune(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = rune(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = rune(c-'A') + 10
		default:
			return 0, false
		}
		v = v*rune(base) + d
		if v > utf8.MaxRune {
			return 0, false
		}
	}
	return v, isXMLChar(v)
}

func isXMLChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}
