package decode

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// WBXML ROAP triggers (application/vnd.oma.drm.roap-trigger+wbxml, roap-core §2.9 and §6.6).
//
// A WBXML trigger is turned into the same *Node tree an XML trigger parses to, with local names
// and prefixes only, and then handed to the XML trigger handler through dispatch. That is what
// the Symbian engine does [S], and it keeps one set of trigger checks for both encodings.
// Namespaces are not resolved (Node.Space stays ""): WBXML tokens name elements, not namespaces,
// and xmlns:* declarations are optional on the wire.

var (
	RuleWBXML          = DefineRule("decode", "DEC-WBXML", SevInfo, "roap-core §6.6", "The trigger was decoded from WBXML; signatures over WBXML triggers are computed on the XML form, so byte offsets into the WBXML body carry no signature")
	RuleWBXMLMalformed = DefineRule("decode", "DEC-WBXML-MALFORMED", SevError, "roap-core §6.6; WBXML 1.3 §5", "The WBXML body is structurally broken (truncated, a length beyond the body, an unknown token, a bad string)")
	RuleWBXMLHeader    = DefineRule("decode", "DEC-WBXML-HEADER", SevWarning, "roap-core §2.9, §6.6", "The WBXML header is not version 1.3, public id 0x13 (-//OMA/DRM 2.1//EN) and UTF-8 (0x6A); the body was decoded with the DRM 2.1 tables anyway")
)

// WBXML global tokens (WBXML 1.3 §7.1).
const (
	wbSwitchPage = 0x00
	wbEnd        = 0x01
	wbEntity     = 0x02
	wbStrI       = 0x03
	wbLiteral    = 0x04
	wbExtI0      = 0x40
	wbExtI1      = 0x41
	wbExtI2      = 0x42
	wbPI         = 0x43
	wbLiteralC   = 0x44
	wbExtT0      = 0x80
	wbExtT1      = 0x81
	wbExtT2      = 0x82
	wbStrT       = 0x83
	wbLiteralA   = 0x84
	wbExt0       = 0xC0
	wbExt1       = 0xC1
	wbExt2       = 0xC2
	wbOpaque     = 0xC3
	wbLiteralAC  = 0xC4

	wbHasContent = 0x40
	wbHasAttrs   = 0x80
)

// Header values of a DRM 2.1 trigger.
const (
	wbxmlVersion13  = 0x03
	wbxmlPublicID   = 0x13
	wbxmlPublicText = "-//OMA/DRM 2.1//EN"
	wbxmlUTF8       = 0x6A
	wbxmlLatin1     = 0x04

	// wbxmlMaxStringTable caps the string table independently of the body size: a trigger needs
	// at most a few hundred bytes of table, and every STR_T can copy from it.
	wbxmlMaxStringTable = 64 << 10
)

// Code page 0 of public id 0x13, roap-core §6.6.
var wbxmlTags = map[byte]string{
	0x05: "roap:roapTrigger", 0x06: "registrationRequest", 0x07: "roAcquisition", 0x08: "joinDomain",
	0x09: "leaveDomain", 0x0A: "signature", 0x0B: "encKey", 0x0C: "riID", 0x0D: "riAlias", 0x0E: "nonce",
	0x0F: "roapURL", 0x10: "domainID", 0x11: "domainAlias", 0x12: "roap:domainID", 0x13: "roID",
	0x14: "roAlias", 0x15: "contentID", 0x16: "roap:X509SPKIHash", 0x17: "keyIdentifier", 0x18: "hash",
	0x19: "ds:SignedInfo", 0x1A: "ds:SignatureValue", 0x1B: "ds:KeyInfo", 0x1C: "ds:CanonicalizationMethod",
	0x1D: "ds:SignatureMethod", 0x1E: "ds:Reference", 0x1F: "ds:RetrievalMethod", 0x20: "ds:Transforms",
	0x21: "ds:DigestMethod", 0x22: "ds:DigestValue", 0x23: "ds:Transform", 0x24: "xenc:EncryptionMethod",
	0x25: "xenc:CipherData", 0x26: "xenc:CipherValue", 0x27: "extendedTrigger", 0x28: "trgLeaveDomain",
	0x29: "deviceID",
}

// None of the DRM 2.1 attribute starts carries a value prefix: the value is exactly the
// concatenation of the value tokens and strings that follow.
var wbxmlAttrStarts = map[byte]string{
	0x05: "xsi:type", 0x06: "xmlns:roap", 0x07: "xmlns:xsi", 0x08: "xmlns:xenc", 0x09: "xmlns:ds",
	0x0A: "xmlns:o-ex", 0x0B: "xmlns:o-dd", 0x0C: "xmlns:oma-dd", 0x0D: "version", 0x0E: "proxy",
	0x0F: "id", 0x10: "Id", 0x11: "algorithm", 0x12: "Algorithm", 0x13: "URI", 0x14: "type",
}

var wbxmlAttrValues = map[byte]string{
	0x85: NSROAP, 0x86: "http://odrl.net/1.1/ODRL-EX", 0x87: "http://odrl.net/1.1/ODRL-DD",
	0x88: "http://www.openmobilealliance.com/oma-dd", 0x89: NSDS, 0x8A: NSXENC, 0x8B: NSXSI,
	0x8C: "roap:X509SPKIHash", 0x8D: AlgSHA1, 0x8E: AlgC14N, 0x8F: AlgHMAC1, 0x90: "1.1", 0x91: "2.0",
	0x92: "2.1", 0x93: "identificationRequest", 0x94: "roUploadRequest", 0x95: "meteringReport",
	0x96: "leaveDomain",
}

// wbxmlPrefixNS gives the namespace each prefix of the tables stands for, so the encoder can
// match elements written with another prefix (or a default namespace) by URI.
var wbxmlPrefixNS = map[string]string{
	"roap": NSROAP, "ds": NSDS, "xenc": NSXENC, "xsi": NSXSI, "xmlns": nsXMLNS,
}

// looksWBXML reports whether body starts like a WBXML 1.3 ROAP trigger (03 13 6A).
func looksWBXML(body []byte) bool {
	return len(body) >= 3 && body[0] == 0x03 && body[1] == 0x13 && body[2] == 0x6A
}

// wbxmlError is a structural problem or a limit hit at a byte offset of the WBXML body.
type wbxmlError struct {
	off   int
	msg   string
	limit bool
}

func (e *wbxmlError) Error() string { return fmt.Sprintf("offset %d: %s", e.off, e.msg) }

// decodeWBXMLTrigger decodes a WBXML trigger into m: it builds the element tree, lets the XML
// trigger handler judge it, and then removes what only makes sense for XML bytes.
func decodeWBXMLTrigger(d *state, m *Message, body []byte) {
	if len(body) > d.lim.MaxBytes {
		m.Reason = "decode limit: WBXML body too large"
		m.Add(RuleLimit.At("", "WBXML body of %d bytes exceeds the %d-byte decode limit; the body passes through undecoded", len(body), d.lim.MaxBytes))
		return
	}
	r := &wbxmlReader{b: body, lim: d.lim, budget: d.lim.MaxBytes}
	warnings, err := r.header()
	m.Add(warnings...)
	var root *Node
	if err == nil {
		root, err = r.document()
	}
	if err != nil {
		var we *wbxmlError
		if errors.As(err, &we) && we.limit {
			m.Reason = "decode limit: " + we.msg
			m.Add(RuleLimit.At("", "WBXML %s; the body passes through undecoded", we.Error()))
			return
		}
		m.Reason = "malformed WBXML: " + err.Error()
		msg := err.Error()
		if len(body) > 0 && body[0] == '<' {
			msg += " (the body starts with '<': XML sent with the WBXML content type?)"
		}
		m.Add(RuleWBXMLMalformed.At("", "%s", msg))
		return
	}
	m.Doc = &Document{Raw: body, Root: root, Nodes: r.nodes}
	m.Root = root
	dispatch(d, m, root)
	// Node offsets index the WBXML tokens (useful to highlight the raw body), but nothing is
	// signed over them: a trigger signature covers the XML form (roap-core §6.6).
	m.Signature = nil
	// WBXML cannot say which namespace an element is in; the code page fixes it. Judging the
	// root's namespace would flag every WBXML trigger, so that finding is dropped and the
	// namespace the roap:roapTrigger token stands for is recorded instead.
	kept := m.Findings[:0]
	for _, f := range m.Findings {
		if f.Rule != RuleRootNS.ID {
			kept = append(kept, f)
		}
	}
	m.Findings = kept
	if m.Namespace == "" && root.Prefix == "roap" {
		m.Namespace = NSROAP
	}
	m.Add(RuleWBXML.At("/"+root.Local, "decoded from WBXML (%d bytes, %d nodes); signatures over WBXML triggers are computed on the XML form", len(body), r.nodes))
}

// wbxmlReader walks one WBXML body. Every read is bounds-checked against the body; every
// growing dimension is checked against the limits.
type wbxmlReader struct {
	b        []byte
	i        int
	lim      Limits
	strtbl   []byte
	latin1   bool
	nodes    int
	budget   int // bytes of decoded strings still allowed (STR_T can repeat table strings)
	tagPage  byte
	attrPage byte
}

func (r *wbxmlReader) fail(off int, format string, args ...any) error {
	return &wbxmlError{off: off, msg: fmt.Sprintf(format, args...)}
}

func (r *wbxmlReader) limit(off int, format string, args ...any) error {
	return &wbxmlError{off: off, msg: fmt.Sprintf(format, args...), limit: true}
}

func (r *wbxmlReader) u8(what string) (byte, error) {
	if r.i >= len(r.b) {
		return 0, r.fail(r.i, "body ends where %s was expected", what)
	}
	c := r.b[r.i]
	r.i++
	return c, nil
}

// mbUint32 reads a WBXML multi-byte unsigned integer: big-endian groups of 7 bits, high bit set
// on all but the last byte, at most 5 bytes and at most 32 bits.
func (r *wbxmlReader) mbUint32(what string) (uint32, error) {
	start := r.i
	var v uint64
	for n := 0; n < 5; n++ {
		if r.i >= len(r.b) {
			return 0, r.fail(start, "body ends inside the multi-byte integer for %s", what)
		}
		c := r.b[r.i]
		r.i++
		v = v<<7 | uint64(c&0x7F)
		if c&0x80 == 0 {
			if v > 0xFFFFFFFF {
				return 0, r.fail(start, "multi-byte integer for %s exceeds 32 bits", what)
			}
			return uint32(v), nil
		}
	}
	return 0, r.fail(start, "multi-byte integer for %s is longer than 5 bytes", what)
}

// header reads version, public id, charset and string table. Deviations that can still be
// decoded come back as warnings.
func (r *wbxmlReader) header() ([]Finding, error) {
	var warn []Finding
	version, err := r.u8("the WBXML version byte")
	if err != nil {
		return nil, err
	}
	if version != wbxmlVersion13 {
		warn = append(warn, RuleWBXMLHeader.At("", "WBXML version byte 0x%02X (%d.%d); DRM 2.1 triggers use 0x03 (1.3)", version, version>>4+1, version&0x0F))
	}
	pidOff := r.i
	pid, err := r.mbUint32("the public id")
	if err != nil {
		return nil, err
	}
	var pidIndex uint32
	pidInTable := pid == 0
	if pidInTable {
		if pidIndex, err = r.mbUint32("the public id string index"); err != nil {
			return nil, err
		}
	}
	// WBXML 1.0 (version 0x00) has no charset field.
	charset := uint32(wbxmlUTF8)
	if version != 0x00 {
		if charset, err = r.mbUint32("the charset"); err != nil {
			return nil, err
		}
	}
	switch charset {
	case wbxmlUTF8:
	case wbxmlLatin1:
		r.latin1 = true
		warn = append(warn, RuleWBXMLHeader.At("", "charset MIBenum %d (ISO-8859-1); DRM 2.1 triggers use UTF-8 (106); strings converted from Latin-1", charset))
	default:
		warn = append(warn, RuleWBXMLHeader.At("", "charset MIBenum %d; DRM 2.1 triggers use UTF-8 (106); strings decoded as UTF-8", charset))
	}
	tblOff := r.i
	n, err := r.mbUint32("the string table length")
	if err != nil {
		return nil, err
	}
	if rest := len(r.b) - r.i; uint64(n) > uint64(rest) {
		return nil, r.fail(tblOff, "string table declared as %d bytes but only %d bytes follow", n, rest)
	}
	if n > wbxmlMaxStringTable {
		return nil, r.limit(tblOff, "string table of %d bytes exceeds the %d-byte limit", n, wbxmlMaxStringTable)
	}
	r.strtbl = r.b[r.i : r.i+int(n)]
	r.i += int(n)
	if pidInTable {
		raw, err := r.tableString(pidIndex, pidOff)
		if err != nil {
			return nil, err
		}
		if s := string(raw); s != wbxmlPublicText {
			warn = append(warn, RuleWBXMLHeader.At("", "public id %q; DRM 2.1 triggers use 0x13 (%s); decoded with the DRM 2.1 tables anyway", s, wbxmlPublicText))
		}
	} else if pid != wbxmlPublicID {
		warn = append(warn, RuleWBXMLHeader.At("", "public id 0x%02X; DRM 2.1 triggers use 0x13 (%s); decoded with the DRM 2.1 tables anyway", pid, wbxmlPublicText))
	}
	return warn, nil
}

// tableString returns the NUL-terminated string starting at index idx of the string table.
func (r *wbxmlReader) tableString(idx uint32, off int) ([]byte, error) {
	if uint64(idx) >= uint64(len(r.strtbl)) {
		return nil, r.fail(off, "string table index %d is outside the %d-byte string table", idx, len(r.strtbl))
	}
	s := r.strtbl[idx:]
	end := bytes.IndexByte(s, 0)
	if end < 0 {
		return nil, r.fail(off, "string table entry at index %d is not NUL-terminated", idx)
	}
	return s[:end], nil
}

// inlineString reads a NUL-terminated inline string (after STR_I or EXT_I).
func (r *wbxmlReader) inlineString() ([]byte, error) {
	start := r.i
	end := bytes.IndexByte(r.b[r.i:], 0)
	if end < 0 {
		return nil, r.fail(start, "inline string is not NUL-terminated before the end of the body")
	}
	r.i += end + 1
	return r.b[start : start+end], nil
}

// text converts raw string bytes to a Go string in the document charset, refusing what XML
// could not carry so that the canonical form of the tree stays well-formed.
func (r *wbxmlReader) text(raw []byte, off int) (string, error) {
	var s string
	if r.latin1 {
		var b strings.Builder
		for _, c := range raw {
			b.WriteRune(rune(c))
		}
		s = b.String()
	} else {
		if !utf8.Valid(raw) {
			return "", r.fail(off, "string is not valid UTF-8")
		}
		s = string(raw)
	}
	for _, c := range s {
		if !isXMLChar(c) {
			return "", r.fail(off, "string holds U+%04X, which XML cannot carry", c)
		}
	}
	if err := r.spend(len(s), off); err != nil {
		return "", err
	}
	return s, nil
}

func (r *wbxmlReader) spend(n, off int) error {
	r.budget -= n
	if r.budget < 0 {
		return r.limit(off, "decoded strings exceed %d bytes in total", r.lim.MaxBytes)
	}
	return nil
}

func (r *wbxmlReader) countNode(off int) error {
	r.nodes++
	if r.nodes > r.lim.MaxNodes {
		return r.limit(off, "more than %d nodes", r.lim.MaxNodes)
	}
	return nil
}

// name validates a tag or attribute name taken from the string table (LITERAL tokens).
func (r *wbxmlReader) name(raw []byte, off int) (string, error) {
	if len(raw) == 0 {
		return "", r.fail(off, "empty literal name")
	}
	if len(raw) > r.lim.MaxNameLen {
		return "", r.limit(off, "literal name longer than %d bytes", r.lim.MaxNameLen)
	}
	if !utf8.Valid(raw) {
		return "", r.fail(off, "literal name is not valid UTF-8")
	}
	for _, c := range string(raw) {
		if c < 0x21 || c == 0x7F || (c < 0x80 && isNameEnd(byte(c))) || c == '&' || !isXMLChar(c) {
			return "", r.fail(off, "literal name %q holds a character that cannot appear in an XML name", raw)
		}
	}
	return string(raw), nil
}

// document reads the body: optional PIs, the root element, optional PIs, nothing else.
func (r *wbxmlReader) document() (*Node, error) {
	var root *Node
	for r.i < len(r.b) {
		off := r.i
		tok := r.b[r.i]
		switch {
		case tok == wbPI:
			r.i++
			if _, err := r.pi(); err != nil {
				return nil, err
			}
		case root != nil:
			return nil, r.fail(off, "%d bytes after the root element (token %s)", len(r.b)-off, wbxmlTokenName(tok))
		case tok == wbSwitchPage:
			r.i++
			p, err := r.u8("a code page number")
			if err != nil {
				return nil, err
			}
			r.tagPage = p
		default:
			n, err := r.element(nil, 1)
			if err != nil {
				return nil, err
			}
			root = n
		}
	}
	if root == nil {
		return nil, r.fail(r.i, "no root element")
	}
	return root, nil
}

// element reads one element starting at its tag token.
func (r *wbxmlReader) element(parent *Node, depth int) (*Node, error) {
	start := r.i
	if depth > r.lim.MaxDepth {
		return nil, r.limit(start, "elements nested deeper than %d", r.lim.MaxDepth)
	}
	tok, err := r.u8("a tag")
	if err != nil {
		return nil, err
	}
	var qname string
	switch tok & 0x3F {
	case wbSwitchPage, wbEnd, wbEntity, wbStrI:
		return nil, r.fail(start, "token %s where a tag was expected", wbxmlTokenName(tok))
	case wbLiteral:
		idxOff := r.i
		idx, err := r.mbUint32("a literal tag name index")
		if err != nil {
			return nil, err
		}
		raw, err := r.tableString(idx, idxOff)
		if err != nil {
			return nil, err
		}
		if qname, err = r.name(raw, idxOff); err != nil {
			return nil, err
		}
	default:
		name, ok := wbxmlTags[tok&0x3F]
		if !ok || r.tagPage != 0 {
			return nil, r.fail(start, "unknown tag token 0x%02X (code page %d); the DRM 2.1 code page 0 has tags 0x05-0x29", tok, r.tagPage)
		}
		qname = name
	}
	if err := r.countNode(start); err != nil {
		return nil, err
	}
	n := &Node{Kind: ElementNode, Parent: parent, Start: start}
	n.Prefix, n.Local = splitQName(qname)
	if tok&wbHasAttrs != 0 {
		if err := r.attributes(n); err != nil {
			return nil, err
		}
	}
	n.Inner = r.i
	if tok&wbHasContent == 0 {
		n.InnerEnd, n.End = r.i, r.i
		return n, nil
	}
	if err := r.content(n, depth); err != nil {
		return nil, err
	}
	return n, nil
}

// content reads the children of n up to and including its END token.
func (r *wbxmlReader) content(n *Node, depth int) error {
	for {
		off := r.i
		if r.i >= len(r.b) {
			return r.fail(off, "body ends inside <%s> (missing END)", n.QName())
		}
		tok := r.b[r.i]
		switch tok {
		case wbEnd:
			r.i++
			n.InnerEnd, n.End = off, r.i
			return nil
		case wbSwitchPage:
			r.i++
			p, err := r.u8("a code page number")
			if err != nil {
				return err
			}
			r.tagPage = p
		case wbStrI, wbStrT, wbEntity, wbOpaque:
			s, err := r.stringValue()
			if err != nil {
				return err
			}
			if err := r.appendText(n, s, off); err != nil {
				return err
			}
		case wbPI:
			r.i++
			body, err := r.pi()
			if err != nil {
				return err
			}
			if err := r.countNode(off); err != nil {
				return err
			}
			n.Children = append(n.Children, &Node{Kind: PINode, Text: body, Parent: n, Start: off, End: r.i})
		case wbExtI0, wbExtI1, wbExtI2, wbExtT0, wbExtT1, wbExtT2, wbExt0, wbExt1, wbExt2:
			return r.fail(off, "extension token %s has no meaning in the DRM 2.1 code page", wbxmlTokenName(tok))
		default:
			c, err := r.element(n, depth+1)
			if err != nil {
				return err
			}
			n.Children = append(n.Children, c)
		}
	}
}

// stringValue reads one string-valued token (STR_I, STR_T, ENTITY, OPAQUE) at r.i.
func (r *wbxmlReader) stringValue() (string, error) {
	off := r.i
	tok := r.b[r.i]
	r.i++
	switch tok {
	case wbStrI:
		raw, err := r.inlineString()
		if err != nil {
			return "", err
		}
		return r.text(raw, off)
	case wbStrT:
		idx, err := r.mbUint32("a string table index")
		if err != nil {
			return "", err
		}
		raw, err := r.tableString(idx, off)
		if err != nil {
			return "", err
		}
		return r.text(raw, off)
	case wbEntity:
		cp, err := r.mbUint32("an entity code point")
		if err != nil {
			return "", err
		}
		if cp > utf8.MaxRune || !isXMLChar(rune(cp)) {
			return "", r.fail(off, "ENTITY U+%04X is not a character XML can carry", cp)
		}
		s := string(rune(cp))
		return s, r.spend(len(s), off)
	case wbOpaque:
		// DRM 2.1 encoders put binary values (hashes, nonces, signature and cipher values) as
		// OPAQUE; their XML form is base64Binary, so the tree carries them base64-encoded.
		ln, err := r.mbUint32("an OPAQUE length")
		if err != nil {
			return "", err
		}
		if rest := len(r.b) - r.i; uint64(ln) > uint64(rest) {
			return "", r.fail(off, "OPAQUE declares %d bytes but only %d bytes follow", ln, rest)
		}
		data := r.b[r.i : r.i+int(ln)]
		r.i += int(ln)
		enc := base64.StdEncoding.EncodedLen(len(data))
		if err := r.spend(enc, off); err != nil {
			return "", err
		}
		return base64.StdEncoding.EncodeToString(data), nil
	}
	return "", r.fail(off, "token %s is not a string", wbxmlTokenName(tok))
}

// appendText merges adjacent string tokens into one text node, as XML character data would be.
func (r *wbxmlReader) appendText(n *Node, s string, off int) error {
	if s == "" {
		return nil
	}
	if k := len(n.Children); k > 0 && n.Children[k-1].Kind == TextNode {
		last := n.Children[k-1]
		if len(last.Text)+len(s) > r.lim.MaxTextSize {
			return r.limit(off, "text node larger than %d bytes", r.lim.MaxTextSize)
		}
		last.Text += s
		last.End = r.i
		return nil
	}
	if len(s) > r.lim.MaxTextSize {
		return r.limit(off, "text node larger than %d bytes", r.lim.MaxTextSize)
	}
	if err := r.countNode(off); err != nil {
		return err
	}
	n.Children = append(n.Children, &Node{Kind: TextNode, Text: s, Parent: n, Start: off, End: r.i})
	return nil
}

// attributes reads the attribute list of n up to and including its END token.
func (r *wbxmlReader) attributes(n *Node) error {
	var cur *Attr
	var val strings.Builder
	finish := func(off int) error {
		if cur == nil {
			return nil
		}
		cur.Value = val.String()
		val.Reset()
		for _, o := range n.Attrs {
			if o.Prefix == cur.Prefix && o.Local == cur.Local {
				return r.fail(off, "duplicate attribute %s on <%s>", attrQName(*cur), n.QName())
			}
		}
		if len(n.Attrs) >= r.lim.MaxAttrs {
			return r.limit(off, "more than %d attributes on <%s>", r.lim.MaxAttrs, n.QName())
		}
		n.Attrs = append(n.Attrs, *cur)
		cur = nil
		return nil
	}
	begin := func(qname string, off int) error {
		if err := finish(off); err != nil {
			return err
		}
		a := Attr{}
		a.Prefix, a.Local = splitQName(qname)
		if qname == "xmlns" {
			a.IsNS = true
		} else if a.Prefix == "xmlns" {
			a.IsNS = true
		}
		cur = &a
		return nil
	}
	addValue := func(s string, off int) error {
		if cur == nil {
			return r.fail(off, "attribute value on <%s> before any attribute start", n.QName())
		}
		if val.Len()+len(s) > r.lim.MaxTextSize {
			return r.limit(off, "attribute value larger than %d bytes", r.lim.MaxTextSize)
		}
		val.WriteString(s)
		return nil
	}
	for {
		off := r.i
		if r.i >= len(r.b) {
			return r.fail(off, "body ends inside the attributes of <%s> (missing END)", n.QName())
		}
		tok := r.b[r.i]
		switch {
		case tok == wbEnd:
			r.i++
			return finish(off)
		case tok == wbSwitchPage:
			r.i++
			p, err := r.u8("a code page number")
			if err != nil {
				return err
			}
			r.attrPage = p
		case tok == wbLiteral:
			r.i++
			idx, err := r.mbUint32("a literal attribute name index")
			if err != nil {
				return err
			}
			raw, err := r.tableString(idx, off)
			if err != nil {
				return err
			}
			name, err := r.name(raw, off)
			if err != nil {
				return err
			}
			if err := begin(name, off); err != nil {
				return err
			}
		case tok == wbStrI || tok == wbStrT || tok == wbEntity || tok == wbOpaque:
			s, err := r.stringValue()
			if err != nil {
				return err
			}
			if err := addValue(s, off); err != nil {
				return err
			}
		case tok&0x3F <= wbLiteralC&0x3F:
			// The remaining global tokens (EXT_*, PI, LITERAL_C/A/AC) cannot appear here.
			return r.fail(off, "token %s cannot appear in the attributes of <%s>", wbxmlTokenName(tok), n.QName())
		case tok < 0x80:
			name, ok := wbxmlAttrStarts[tok]
			if !ok || r.attrPage != 0 {
				return r.fail(off, "unknown attribute start token 0x%02X (code page %d) on <%s>", tok, r.attrPage, n.QName())
			}
			r.i++
			if err := begin(name, off); err != nil {
				return err
			}
		default:
			v, ok := wbxmlAttrValues[tok]
			if !ok || r.attrPage != 0 {
				return r.fail(off, "unknown attribute value token 0x%02X (code page %d) on <%s>", tok, r.attrPage, n.QName())
			}
			r.i++
			if err := r.spend(len(v), off); err != nil {
				return err
			}
			if err := addValue(v, off); err != nil {
				return err
			}
		}
	}
}

// pi reads a processing instruction after its PI token: an attribute start (the target, with
// an optional value prefix), value tokens and END. It returns "target data" like the XML parser.
func (r *wbxmlReader) pi() (string, error) {
	holder := &Node{Kind: ElementNode, Local: "?"}
	if err := r.attributes(holder); err != nil {
		return "", err
	}
	if len(holder.Attrs) != 1 {
		return "", r.fail(r.i, "processing instruction with %d targets", len(holder.Attrs))
	}
	a := holder.Attrs[0]
	if a.Value == "" {
		return attrQName(a), nil
	}
	return attrQName(a) + " " + a.Value, nil
}

func attrQName(a Attr) string {
	if a.Prefix == "" {
		return a.Local
	}
	return a.Prefix + ":" + a.Local
}

// wbxmlTokenName names a token for error messages.
func wbxmlTokenName(tok byte) string {
	names := map[byte]string{
		wbSwitchPage: "SWITCH_PAGE", wbEnd: "END", wbEntity: "ENTITY", wbStrI: "STR_I", wbLiteral: "LITERAL",
		wbExtI0: "EXT_I_0", wbExtI1: "EXT_I_1", wbExtI2: "EXT_I_2", wbPI: "PI", wbLiteralC: "LITERAL_C",
		wbExtT0: "EXT_T_0", wbExtT1: "EXT_T_1", wbExtT2: "EXT_T_2", wbStrT: "STR_T", wbLiteralA: "LITERAL_A",
		wbExt0: "EXT_0", wbExt1: "EXT_1", wbExt2: "EXT_2", wbOpaque: "OPAQUE", wbLiteralAC: "LITERAL_AC",
	}
	if s, ok := names[tok]; ok {
		return fmt.Sprintf("%s (0x%02X)", s, tok)
	}
	return fmt.Sprintf("0x%02X", tok)
}

// EncodeWBXMLTrigger encodes an XML trigger tree (parsed with ParseXML or built with El) as a
// WBXML 1.3 DRM 2.1 trigger: tags and attribute names from code page 0, attribute values from
// the value table when one matches exactly, everything else as inline strings. Names missing
// from the tables are written as LITERAL tokens through the string table. White-space text is
// kept as it is in the tree; text is always STR_I (never OPAQUE), so a decoder gets back exactly
// the characters of the XML form.
func EncodeWBXMLTrigger(root *Node) ([]byte, error) {
	if root == nil || root.Kind != ElementNode {
		return nil, errors.New("wbxml: the root must be an element")
	}
	e := &wbxmlEncoder{index: map[string]uint32{}}
	if err := e.element(root, 1); err != nil {
		return nil, err
	}
	out := []byte{wbxmlVersion13, wbxmlPublicID, wbxmlUTF8}
	out = appendMbUint32(out, uint32(len(e.strtbl)))
	out = append(out, e.strtbl...)
	return append(out, e.body...), nil
}

type wbxmlEncoder struct {
	body   []byte
	strtbl []byte
	index  map[string]uint32 // string table offset of each literal name already stored
}

func appendMbUint32(b []byte, v uint32) []byte {
	var tmp [5]byte
	i := len(tmp) - 1
	tmp[i] = byte(v & 0x7F)
	for v >>= 7; v != 0; v >>= 7 {
		i--
		tmp[i] = byte(v&0x7F) | 0x80
	}
	return append(b, tmp[i:]...)
}

func (e *wbxmlEncoder) literal(name string) (uint32, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return 0, fmt.Errorf("wbxml: name %q holds a NUL byte", name)
	}
	if off, ok := e.index[name]; ok {
		return off, nil
	}
	off := uint32(len(e.strtbl))
	e.strtbl = append(append(e.strtbl, name...), 0)
	e.index[name] = off
	return off, nil
}

func (e *wbxmlEncoder) inline(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("wbxml: string %q holds a NUL byte", s)
	}
	e.body = append(append(append(e.body, wbStrI), s...), 0)
	return nil
}

// tableMatch reports whether a name of the tables (prefix:local) names the given node or
// attribute: same local name, and the same namespace when it is known, else the same prefix.
func tableMatch(tableName, prefix, local, space string) bool {
	tp, tl := splitQName(tableName)
	if tl != local {
		return false
	}
	if space != "" {
		return space == wbxmlPrefixNS[tp] && (tp != "" || prefix == "")
	}
	return tp == prefix
}

func (e *wbxmlEncoder) element(n *Node, depth int) error {
	if depth > DefaultLimits.MaxDepth {
		return fmt.Errorf("wbxml: elements nested deeper than %d", DefaultLimits.MaxDepth)
	}
	var tok byte
	for t, name := range wbxmlTags {
		if tableMatch(name, n.Prefix, n.Local, n.Space) {
			tok = t
			break
		}
	}
	var lit uint32
	if tok == 0 {
		off, err := e.literal(n.QName())
		if err != nil {
			return err
		}
		tok, lit = wbLiteral, off
	}
	hasContent := false
	for _, c := range n.Children {
		if c.Kind == ElementNode || c.Kind == PINode || (c.Kind == TextNode && c.Text != "") {
			hasContent = true
		}
	}
	if len(n.Attrs) > 0 {
		tok |= wbHasAttrs
	}
	if hasContent {
		tok |= wbHasContent
	}
	e.body = append(e.body, tok)
	if tok&0x3F == wbLiteral {
		e.body = appendMbUint32(e.body, lit)
	}
	if len(n.Attrs) > 0 {
		for _, a := range n.Attrs {
			if err := e.attribute(a); err != nil {
				return err
			}
		}
		e.body = append(e.body, wbEnd)
	}
	if !hasContent {
		return nil
	}
	for _, c := range n.Children {
		switch c.Kind {
		case ElementNode:
			if err := e.element(c, depth+1); err != nil {
				return err
			}
		case TextNode:
			if c.Text == "" {
				continue
			}
			if err := e.inline(c.Text); err != nil {
				return err
			}
		case PINode:
			target, data, _ := strings.Cut(c.Text, " ")
			e.body = append(e.body, wbPI)
			if err := e.attribute(Attr{Local: target, Value: data}); err != nil {
				return err
			}
			e.body = append(e.body, wbEnd)
		}
	}
	e.body = append(e.body, wbEnd)
	return nil
}

func (e *wbxmlEncoder) attribute(a Attr) error {
	prefix, local, space := a.Prefix, a.Local, a.Space
	if a.IsNS {
		space = nsXMLNS
		if prefix == "" { // default namespace declaration: no token exists for it
			prefix, local, space = "", "xmlns", ""
		}
	}
	var tok byte
	for t, name := range wbxmlAttrStarts {
		if tableMatch(name, prefix, local, space) {
			tok = t
			break
		}
	}
	if tok != 0 {
		e.body = append(e.body, tok)
	} else {
		qn := local
		if prefix != "" {
			qn = prefix + ":" + local
		}
		off, err := e.literal(qn)
		if err != nil {
			return err
		}
		e.body = appendMbUint32(append(e.body, wbLiteral), off)
	}
	if a.Value == "" {
		return nil
	}
	for t, v := range wbxmlAttrValues {
		if v == a.Value {
			e.body = append(e.body, t)
			return nil
		}
	}
	return e.inline(a.Value)
}
