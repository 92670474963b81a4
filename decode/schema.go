package decode

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"
	"unsafe"
)

// VType is the value type of a field in a presence table.
type VType uint8

// Value types known to the presence engine.
const (
	VAny        VType = iota // complex or opaque: not checked here
	VString                  // any text, must not be empty
	VBase64                  // base64Binary
	VNonce                   // base64Binary nonce (length checked)
	VDateTime                // xs:dateTime
	VAnyURI                  // xs:anyURI
	VInteger                 // xs:integer
	VNCName                  // xs:ID
	VBoolean                 // xs:boolean
	VIdentifier              // roap:Identifier (keyIdentifier / X509SPKIHash)
	VChain                   // roap:CertificateChain
	VOCSP                    // base64 DER OCSPResponse
	VExtensions              // roap:Extensions
	VKeyIDs                  // roap:KeyIdentifiers (trustedAuthorities)
	VDomainID                // ROAP Domain ID string (base + 3-digit generation)
)

// Unbounded is the Max of a repeatable element.
const Unbounded = -1

// ElemSpec is one row of a presence table.
type ElemSpec struct {
	Name string
	Min  int
	Max  int
	Type VType
	// Value, when set, replaces the generic value rule for this field (a message-specific ID).
	Value *Rule
}

// M is a mandatory single element.
func M(name string, t VType) ElemSpec { return ElemSpec{Name: name, Min: 1, Max: 1, Type: t} }

// O is an optional single element.
func O(name string, t VType) ElemSpec { return ElemSpec{Name: name, Min: 0, Max: 1, Type: t} }

// R is a repeated element with at least min occurrences.
func R(name string, min int, t VType) ElemSpec {
	return ElemSpec{Name: name, Min: min, Max: Unbounded, Type: t}
}

// Absent marks an element that must not occur (Max 0); used in variant tables.
func Absent(name string) ElemSpec { return ElemSpec{Name: name, Min: 0, Max: 0} }

// Seq checks the children of an element against a presence table.
type Seq struct {
	Presence Rule // missing, unexpected, too many, forbidden
	Order    Rule // out of schema order
	// Where names the table in messages ("2-pass Success TokenDeliveryResponse").
	Where string
	// Open allows unknown children (reported as info rather than Presence findings).
	Open bool
	// qualified names children the schema declares as global (namespace-qualified) elements,
	// such as roap:protectedRO: no "namespace-qualified child" note is made for them.
	qualified []string
}

// Found holds the nodes a presence table matched, by field name. Nodes are grouped per table
// row in one array rather than kept in a map of slices: Check runs several times per message,
// and a map plus a slice per field was most of its allocations.
type Found struct {
	specs []ElemSpec
	nodes []*Node // grouped by row, document order within a row
	start []int   // nodes of row i are nodes[start[i]:start[i+1]]
}

// All returns every node found for name (nil when none).
func (f Found) All(name string) []*Node {
	for i := range f.specs {
		if f.specs[i].Name == name {
			a, b := f.start[i], f.start[i+1]
			if a == b {
				return nil
			}
			return f.nodes[a:b:b]
		}
	}
	return nil
}

// First returns the first node found for name, or nil.
func (f Found) First(name string) *Node {
	if ns := f.All(name); len(ns) > 0 {
		return ns[0]
	}
	return nil
}

// Text returns the text of the first node found for name.
func (f Found) Text(name string) string { return f.First(name).TextContent() }

func (s Seq) isQualified(local string) bool {
	for _, q := range s.qualified {
		if strings.EqualFold(local, q) {
			return true
		}
	}
	return false
}

// Check matches parent's element children to specs, adds findings to m, records chains, OCSP
// responses and identifiers found, and returns the matched nodes. Names match exactly, then
// case-insensitively (reported as info).
func (s Seq) Check(d *state, m *Message, parent *Node, specs []ElemSpec) Found {
	// rows[k] is the table row the k-th child matched (-1: none); small tables and child lists
	// stay on the stack.
	var rowsBuf [32]int
	rows := rowsBuf[:0]
	if len(parent.Children) > len(rowsBuf) {
		rows = make([]int, 0, len(parent.Children))
	}
	var countBuf [33]int
	start := countBuf[:len(specs)+1]
	if len(specs)+1 > len(countBuf) {
		start = make([]int, len(specs)+1)
	}
	matched := 0
	last := -1
	for _, c := range parent.Children {
		if c.Kind != ElementNode {
			if c.Kind == TextNode && strings.TrimSpace(c.Text) != "" {
				m.Add(s.Presence.AtSev(SevWarning, PathOf(parent), "unexpected text %q inside <%s>", clip(c.Text, 40), parent.Local))
			}
			rows = append(rows, -1)
			continue
		}
		idx := -1
		for i, sp := range specs {
			if sp.Name == c.Local {
				idx = i
				break
			}
		}
		if idx < 0 {
			for i, sp := range specs {
				if strings.EqualFold(sp.Name, c.Local) {
					idx = i
					m.Add(RuleChildCase.At(PathOf(c), "<%s> is spelled <%s> in the reference", c.Local, sp.Name))
					break
				}
			}
		}
		if idx < 0 {
			if s.Open {
				m.Add(s.Presence.AtSev(SevInfo, PathOf(c), "element <%s> is not in the %s table", c.QName(), s.Where))
			} else {
				m.Add(s.Presence.At(PathOf(c), "unexpected element <%s> in %s", c.QName(), s.Where))
			}
			rows = append(rows, -1)
			continue
		}
		sp := specs[idx]
		if sp.Max == 0 {
			m.Add(s.Presence.At(PathOf(c), "<%s> must not be present in %s", sp.Name, s.Where))
			rows = append(rows, -1)
			continue
		}
		if c.Space != "" && c.Space != parent.Space || (c.Space != "" && c.Prefix != "") {
			if c.Space != "" && !s.isQualified(c.Local) {
				m.Add(RuleChildNS.At(PathOf(c), "<%s> is namespace-qualified (%s); the schema has children unqualified", c.QName(), c.Space))
			}
		}
		if idx < last {
			m.Add(s.Order.At(PathOf(c), "<%s> is out of schema order in %s (it comes before <%s>)", sp.Name, s.Where, specs[last].Name))
		} else {
			last = idx
		}
		// A child matches the first row of its name, so rows sharing a name share its nodes.
		rows = append(rows, idx)
		start[idx+1]++
		matched++
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	found := Found{specs: specs}
	if d != nil {
		found.start = carve(&d.ints, len(start))
	} else {
		found.start = make([]int, len(start))
	}
	copy(found.start, start)
	if matched > 0 {
		if d != nil {
			found.nodes = carve(&d.nodes, matched)
		} else {
			found.nodes = make([]*Node, matched)
		}
		fill := start // reused as the next free slot of each row
		for k, c := range parent.Children {
			if r := rows[k]; r >= 0 {
				found.nodes[fill[r]] = c
				fill[r]++
			}
		}
	}
	for _, sp := range specs {
		ns := found.All(sp.Name)
		n := len(ns)
		switch {
		case n < sp.Min:
			m.Add(s.Presence.At(PathOf(parent)+"/"+sp.Name, "mandatory <%s> is missing from %s", sp.Name, s.Where))
		case sp.Max > 0 && n > sp.Max:
			m.Add(s.Presence.At(PathOf(ns[sp.Max]), "<%s> occurs %d times in %s; at most %d allowed", sp.Name, n, s.Where, sp.Max))
		}
		for _, node := range ns {
			d.checkValue(m, node, sp)
		}
	}
	return found
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func pick(r *Rule, def Rule) Rule {
	if r != nil {
		return *r
	}
	return def
}

// checkValue checks the lexical form of one field and records what it carries.
func (d *state) checkValue(m *Message, n *Node, sp ElemSpec) {
	// The path is built only when something is reported: most fields are fine.
	path := func() string { return PathOf(n) }
	txt := n.TextContent()
	switch sp.Type {
	case VString, VDomainID:
		if txt == "" {
			m.Add(pick(sp.Value, RuleEmpty).At(path(), "<%s> is empty", n.Local))
		}
	case VBase64:
		if _, err := base64Len(txt); err != nil || txt == "" {
			m.Add(pick(sp.Value, RuleBase64).At(path(), "<%s> is not base64: %s", n.Local, b64Err(txt, err)))
		}
	case VNonce:
		n2, err := base64Len(txt)
		if err != nil || txt == "" {
			m.Add(pick(sp.Value, RuleBase64).At(path(), "nonce <%s> is not base64: %s", n.Local, b64Err(txt, err)))
		} else if n2 < 14 {
			m.Add(RuleNonceLen.At(path(), "nonce is %d octets; at least 14 expected", n2))
		}
	case VDateTime:
		if _, exact, err := ParseDateTime(txt); err != nil {
			m.Add(pick(sp.Value, RuleDateTime).At(path(), "<%s> value %q is not an xs:dateTime", n.Local, clip(txt, 40)))
		} else if !exact {
			m.Add(RuleDateTimeZone.At(path(), "<%s> value %q is not in the form YYYY-MM-DDThh:mm:ssZ", n.Local, txt))
		}
	case VAnyURI:
		if !IsAnyURI(txt) {
			m.Add(pick(sp.Value, RuleAnyURI).At(path(), "<%s> value %q is not a URI", n.Local, clip(txt, 60)))
		}
	case VInteger:
		if !IsInteger(txt) {
			m.Add(pick(sp.Value, RuleInteger).At(path(), "<%s> value %q is not an integer", n.Local, clip(txt, 40)))
		}
	case VNCName:
		if !IsNCName(txt) {
			m.Add(pick(sp.Value, RuleNCName).At(path(), "<%s> value %q is not an NCName (xs:ID)", n.Local, clip(txt, 40)))
		}
	case VBoolean:
		switch txt {
		case "true", "false", "1", "0":
		default:
			m.Add(pick(sp.Value, RuleBoolean).At(path(), "<%s> value %q is not a boolean", n.Local, clip(txt, 40)))
		}
	case VIdentifier:
		d.identifier(m, n)
	case VChain:
		d.chain(m, n)
	case VOCSP:
		d.ocsp(m, n)
	case VExtensions:
		d.extensions(m, n)
	case VKeyIDs:
		for _, k := range n.Elements() {
			d.keyIdentifier(m, k)
		}
	}
}

func b64Err(txt string, err error) string {
	if txt == "" {
		return "empty"
	}
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// DecodeBase64 decodes an xs:base64Binary value, ignoring the XML white space the lexical space
// allows (certificates are often line-wrapped) and accepting missing padding nowhere: ROAP
// peers pad.
func DecodeBase64(s string) ([]byte, error) {
	if hasXMLSpace(s) {
		s = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, s)
	}
	return base64.StdEncoding.DecodeString(s)
}

// base64DecodedLen is len(DecodeBase64(s)) with DecodeBase64's error, without keeping the bytes.
func base64DecodedLen(s string) (int, error) {
	if hasXMLSpace(s) {
		b, err := DecodeBase64(s)
		return len(b), err
	}
	return base64Len(s) // no white space: the same decoding DecodeBase64 does
}

// hasXMLSpace is strings.ContainsAny(s, " \t\r\n") with one vectorized byte search per
// character: ContainsAny walks byte by byte, and certificates and OCSP responses are kilobytes.
func hasXMLSpace(s string) bool {
	return strings.IndexByte(s, ' ') >= 0 || strings.IndexByte(s, '\n') >= 0 ||
		strings.IndexByte(s, '\r') >= 0 || strings.IndexByte(s, '\t') >= 0
}

// base64Len validates an xs:base64Binary value and returns its decoded length without keeping
// the bytes. Most base64 fields (signatures, nonces, hashes, cipher values) are only checked,
// and decoding each into a fresh slice cost about a sixth of decoding time.
func base64Len(s string) (int, error) {
	if strings.IndexByte(s, ' ') >= 0 || strings.IndexByte(s, '\t') >= 0 { // rare: spaces inside base64; the general path handles them
		b, err := DecodeBase64(s)
		return len(b), err
	}
	need := base64.StdEncoding.DecodedLen(len(s))
	bp := b64Scratch.Get().(*[]byte)
	if cap(*bp) < need {
		*bp = make([]byte, need)
	}
	// Decode only reads its source, so the string's bytes can be lent to it without a copy.
	n, err := base64.StdEncoding.Decode((*bp)[:need], unsafe.Slice(unsafe.StringData(s), len(s)))
	if cap(*bp) <= 64<<10 { // large buffers are not worth keeping around
		b64Scratch.Put(bp)
	}
	return n, err
}

var b64Scratch = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// ParseDateTime parses an xs:dateTime. exact reports the ROAP form (UTC, Z, no fraction). A
// value without a zone is read as UTC.
func ParseDateTime(s string) (t time.Time, exact bool, err error) {
	if t, err = time.Parse("2006-01-02T15:04:05Z", s); err == nil {
		return t, true, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05"} {
		if t, err = time.Parse(layout, s); err == nil {
			return t.UTC(), false, nil
		}
	}
	return time.Time{}, false, fmt.Errorf("not an xs:dateTime: %q", s)
}

// IsAnyURI reports whether s is a plausible xs:anyURI: non-empty, no white space, parseable.
func IsAnyURI(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n<>\"") {
		return false
	}
	_, err := url.Parse(s)
	return err == nil
}

// IsInteger reports whether s is an xs:integer.
func IsInteger(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '+' || s[0] == '-' {
		s = s[1:]
	}
	if s == "" || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// IsNCName reports whether s is an NCName (the lexical space of xs:ID).
func IsNCName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (r == '-' || r == '.' || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)):
		default:
			return false
		}
	}
	return true
}

// xsiTypeLocal returns the local part of an element's xsi:type QName ("X509SPKIHash"), matching
// the attribute by prefix "xsi" too when the prefix is undeclared.
func xsiTypeLocal(n *Node) (string, bool) {
	for _, a := range n.Attrs {
		if !a.IsNS && a.Local == "type" && (a.Space == NSXSI || (a.Space == "" && a.Prefix == "xsi")) {
			_, l := splitQName(a.Value)
			return l, true
		}
	}
	return "", false
}

// IdentifierHash returns the base64 hash held by an Identifier element (deviceID, riID, reqID …)
// or by a keyIdentifier itself.
func IdentifierHash(n *Node) string {
	if n == nil {
		return ""
	}
	k := n
	if h := n.Child("hash"); h == nil {
		k = n.Child("keyIdentifier")
		if k == nil {
			k = n.Child("identifier")
		}
	}
	return k.Child("hash").TextContent()
}

// identifier checks an Identifier element (a wrapper holding one keyIdentifier).
func (d *state) identifier(m *Message, n *Node) {
	els := n.Elements()
	if len(els) == 0 {
		m.Add(RuleIdentifier.At(PathOf(n), "<%s> holds no keyIdentifier", n.Local))
		return
	}
	if len(els) > 1 {
		m.Add(RuleIdentifier.At(PathOf(n), "<%s> holds %d elements; one keyIdentifier expected", n.Local, len(els)))
	}
	d.keyIdentifier(m, els[0])
}

func (d *state) keyIdentifier(m *Message, k *Node) {
	// The path is built only when something is reported.
	path := func() string { return PathOf(k) }
	if k.Local != "keyIdentifier" && k.Local != "identifier" {
		m.Add(RuleIdentifier.At(path(), "<%s> found where a keyIdentifier was expected", k.Local))
		return
	}
	if t, ok := xsiTypeLocal(k); !ok {
		m.Add(RuleIdentType.At(path(), "keyIdentifier has no xsi:type; expected roap:X509SPKIHash"))
	} else if t != "X509SPKIHash" {
		m.Add(RuleIdentType.At(path(), "keyIdentifier xsi:type is %q; only X509SPKIHash is defined", t))
	}
	if alg, ok := k.Attr("algorithm"); ok && alg != AlgSHA1 {
		m.Add(RuleIdentifier.AtSev(SevWarning, path()+"/@algorithm", "key identifier algorithm %q is not SHA-1", alg))
	}
	h := k.Child("hash")
	if h == nil {
		m.Add(RuleIdentifier.At(path()+"/hash", "keyIdentifier has no <hash>"))
		return
	}
	n, err := base64Len(h.TextContent())
	switch {
	case err != nil || h.TextContent() == "":
		m.Add(RuleBase64.At(PathOf(h), "key identifier hash is not base64: %s", b64Err(h.TextContent(), err)))
	case n != 20:
		m.Add(RuleIdentifier.At(PathOf(h), "key identifier hash is %d bytes; SHA-1 gives 20", n))
	}
}

// chain parses a CertificateChain and records it on m.
func (d *state) chain(m *Message, n *Node) {
	certs := n.ChildrenNamed("certificate")
	ch := Chain{Path: PathOf(n)}
	if len(certs) == 0 {
		m.Add(RuleCert.At(ch.Path, "certificate chain is empty"))
	}
	if len(certs) > d.lim.MaxCerts {
		m.Add(RuleCertCount.At(ch.Path, "chain holds %d certificates; only the first %d are parsed", len(certs), d.lim.MaxCerts))
		certs = certs[:d.lim.MaxCerts]
	}
	for _, c := range certs {
		cert, der, err := parseCert(d.certs, c.TextContent())
		if e, ok := err.(errBase64); ok {
			m.Add(RuleBase64.At(PathOf(c), "certificate is not base64: %s", e.Error()))
			continue
		}
		if err != nil {
			m.Add(RuleCert.At(PathOf(c), "certificate does not parse: %v", err))
			continue
		}
		if ch.Certs == nil { // sized once: chains are short, and growing them was two allocations each
			ch.Certs, ch.DER = make([]*x509.Certificate, 0, len(certs)), make([][]byte, 0, len(certs))
		}
		ch.Certs = append(ch.Certs, cert)
		ch.DER = append(ch.DER, der)
	}
	m.Chains = append(m.Chains, ch)
}

// ocspResponseASN1 is the outer OCSPResponse of RFC 6960, enough to tell a DER OCSP response
// from junk; verify/ parses and judges the inside.
type ocspResponseASN1 struct {
	Status asn1.Enumerated
	Bytes  asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

func (d *state) ocsp(m *Message, n *Node) {
	path := PathOf(n)
	txt := n.TextContent()
	if der, ok := d.ocspTexts.get(txt); ok {
		m.OCSP = append(m.OCSP, OCSPBlob{Path: path, DER: der})
		return
	}
	der, err := DecodeBase64(txt)
	if err != nil || len(der) == 0 {
		m.Add(RuleBase64.At(path, "ocspResponse is not base64: %s", b64Err(txt, err)))
		return
	}
	var r ocspResponseASN1
	if rest, err := asn1.Unmarshal(der, &r); err != nil || len(rest) != 0 {
		m.Add(RuleOCSPDER.At(path, "ocspResponse is not a DER OCSPResponse"))
		return
	}
	d.ocspTexts.put(txt, der)
	m.OCSP = append(m.OCSP, OCSPBlob{Path: path, DER: der})
}

// Extension names known to this tool (xsi:type local parts), by where the reference defines them.
var knownExtensions = map[string]bool{
	"CertificateCaching": true, "PeerKeyIdentifier": true, "NoOCSPResponse": true, "NoOcspResponse": true,
	"OCSPResponderKeyIdentifier": true, "OcspResponderKeyIdentifier": true, "DeviceDetails": true,
	"TransactionIdentifier": true, "DomainNameWhiteList": true, "HashChainSupport": true,
	"NotDomainMember": true, "Movable": true, "DomainID": true, "PostResponseURL": true,
}

// Extensions returns the xsi:type local names of the extensions under an <extensions> element.
func Extensions(n *Node) []string {
	var out []string
	for e := range n.EachNamed("extension") {
		t, _ := xsiTypeLocal(e)
		out = append(out, t)
	}
	return out
}

// HasExtension reports whether the message root carries the named extension.
func HasExtension(root *Node, name string) bool {
	ext := root.Child("extensions")
	if ext == nil {
		return false
	}
	for _, t := range Extensions(ext) {
		if strings.EqualFold(t, name) {
			return true
		}
	}
	return false
}

func (d *state) extensions(m *Message, n *Node) {
	for _, e := range n.Elements() {
		path := PathOf(e)
		if e.Local != "extension" {
			m.Add(RuleExtType.At(path, "<%s> inside <extensions>; only <extension> is defined", e.Local))
			continue
		}
		crit := false
		if v, ok := e.Attr("critical"); ok {
			switch v {
			case "true", "1":
				crit = true
			case "false", "0":
			default:
				m.Add(RuleBoolean.At(path+"/@critical", "critical=%q is not a boolean", v))
			}
		}
		t, ok := xsiTypeLocal(e)
		if !ok {
			m.Add(RuleExtType.At(path, "extension has no xsi:type"))
			continue
		}
		if !knownExtensions[t] && crit {
			m.Add(RuleExtCritical.At(path, "unknown extension %q is marked critical", t))
		}
	}
}

// Status values: the union of DRM 2.0/2.1 (roap-core §4) and seed 001 Figure 3.
var knownStatus = map[string]bool{
	"Success": true, "UnknownError": true, "Abort": true, "NotSupported": true, "AccessDenied": true,
	"NotFound": true, "MalformedRequest": true, "UnknownRequest": true, "UnknownCriticalExtension": true,
	"UnsupportedVersion": true, "UnsupportedAlgorithm": true, "NoCertificateChain": true,
	"InvalidCertificateChain": true, "TrustedRootCertificateNotPresent": true, "SignatureError": true,
	"DeviceTimeError": true, "NotRegistered": true, "InvalidDCFHash": true, "InvalidDomain": true,
	"DomainFull": true, "DomainAccessDenied": true, "RightsExpired": true,
	"MalformedMeteringReport": true, "UnableToDecryptMeteringReport": true, "UnableToValidateMeteringReportMAC": true,
	"TokenConsumptionReportError": true, "NoTokenConsumptionReport": true,
}

var quirkStatus = map[string]string{"MalFormedRequest": "MalformedRequest", "UnsupportedCriticalExtension": "UnknownCriticalExtension"}

// KnownStatus reports whether v is a roap:Status value.
func KnownStatus(v string) bool { return knownStatus[v] }

// status reads and checks the status attribute of a response root, applying the placement
// rules: DomainAccessDenied only in joinDomainResponse, token statuses only in
// TokenDeliveryResponse. It returns the value ("" when absent).
func (d *state) status(m *Message, root *Node, kind string) string {
	v, ok := root.Attr("status")
	// The path is only needed for a finding, which a well-formed response has none of.
	path := func() string { return "/" + root.Local + "/@status" }
	if !ok {
		// Case drift in SCE tables ("Status") is tolerated with a note.
		for _, a := range root.Attrs {
			if !a.IsNS && strings.EqualFold(a.Local, "status") {
				v, ok = a.Value, true
				m.Add(RuleChildCase.At(path(), "status attribute is spelled %q", a.Local))
			}
		}
	}
	if !ok {
		m.Add(RuleStatusMissing.At(path(), "%s has no status attribute", kind))
		return ""
	}
	m.Status = v
	switch {
	case quirkStatus[v] != "":
		m.Add(RuleStatusQuirk.At(path(), "status %q is a known misspelling of %q", v, quirkStatus[v]))
	case !knownStatus[v]:
		m.Add(RuleStatusEnum.At(path(), "status %q is not a roap:Status value", clip(v, 60)))
	}
	if v == "DomainAccessDenied" && kind != "joinDomainResponse" {
		m.Add(RuleDADScope.At(path(), "DomainAccessDenied in %s; it is only valid in joinDomainResponse", kind))
	}
	if (v == "TokenConsumptionReportError" || v == "NoTokenConsumptionReport") && kind != "TokenDeliveryResponse" {
		m.Add(RuleTokenScope.At(path(), "%s in %s; it is only valid in TokenDeliveryResponse", v, kind))
	}
	return v
}

// failEmpty reports children on a non-Success response (whose only content is its attributes).
func failEmpty(m *Message, root *Node, rule Rule) {
	if m.Status == "" || m.Status == "Success" {
		return
	}
	if els := root.Elements(); len(els) > 0 {
		m.Add(rule.At(PathOf(els[0]), "status %s, yet the response carries <%s> and %d other element(s); a failed response carries the status only", m.Status, els[0].Local, len(els)-1))
	}
}

// signatureSpan records the byte span of root's last direct <signature> child.
func signatureSpan(m *Message, root *Node) *Node {
	var sig *Node
	for _, c := range root.Children {
		if c.Kind == ElementNode && c.Local == "signature" {
			sig = c
		}
	}
	if sig != nil {
		m.Signature = &Span{Start: sig.Start, End: sig.End}
	}
	return sig
}

// setIDFrom records the identifier held by element n under key.
func setIDFrom(m *Message, key string, n *Node) {
	if n == nil {
		return
	}
	m.setID(key, IdentifierHash(n))
}

// setIDsFrom records several identifier elements under key, comma-separated.
func setIDsFrom(m *Message, key string, ns []*Node) {
	var vals []string
	for _, n := range ns {
		if h := IdentifierHash(n); h != "" {
			vals = append(vals, h)
		}
	}
	m.setID(key, strings.Join(vals, ","))
}
