package decode

import (
	"bytes"
	"fmt"
	"strings"
)

// Namespace URIs that classify messages (by URI plus local name, never by prefix).
const (
	NSROAP    = "urn:oma:bac:dldrm:roap-1.0"
	NSROAP12  = "urn:oma:bac:dldrm:roap-1.2"
	NSXBS     = "urn:oma:xml:bcast:xbs:roap:2.1"
	NSGEN     = "urn:oma:xml:sce:gen"
	NSDOM     = "urn:oma:xml:sce:dom"
	NSXSI     = "http://www.w3.org/2001/XMLSchema-instance"
	NSDS      = "http://www.w3.org/2000/09/xmldsig#"
	NSXENC    = "http://www.w3.org/2001/04/xmlenc#"
	AlgSHA1   = "http://www.w3.org/2000/09/xmldsig#sha1"
	AlgPSS    = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-1#rsa-pss-default"
	AlgKEM    = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-1#rsaes-kem-kdf2-kw-aes128"
	AlgHMAC1  = "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
	AlgHMAC2  = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
	AlgC14N   = "http://www.w3.org/2001/10/xml-exc-c14n#"
	AlgKWAES  = "http://www.w3.org/2001/04/xmlenc#kw-aes128"
	MIMEPDU   = "application/vnd.oma.drm.roap-pdu+xml"
	MIMETrig  = "application/vnd.oma.drm.roap-trigger+xml"
	MIMEWBXML = "application/vnd.oma.drm.roap-trigger+wbxml"
	MIMERO    = "application/vnd.oma.drm.ro+xml"
)

// Direction says which half of an HTTP exchange a body was.
type Direction uint8

// Directions.
const (
	DirUnknown  Direction = iota
	DirRequest            // sent by the HTTP client
	DirResponse           // sent by the HTTP server
)

// Hint is what the transport knows about a body. Every field is optional.
type Hint struct {
	ContentType string
	Direction   Direction
	// Answers is the kind of the request this body answers on the same exchange ("" when none is
	// known). It decides, for example, whether a TokenDeliveryResponse is 2-pass or 1-pass.
	Answers string
	// Pushed says the body arrived without any request (WAP push, a file): 1-pass variants.
	Pushed bool
}

// Decoder decodes bodies within limits. The zero value is not useful; use NewDecoder or Decode.
type Decoder struct {
	Limits Limits
	// Caches of decoded certificates and OCSP responses; nil: decode every one (the
	// package-level Decode keeps no state).
	certs *certCache
	ocsp  *ocspCache
}

// NewDecoder returns a decoder with the given limits. It caches parsed certificates (up to 1,024)
// and OCSP responses (up to 256), which a long-running proxy wants: peers repeat their chains and
// OCSP responses in every message.
func NewDecoder(l Limits) *Decoder {
	return &Decoder{Limits: l, certs: newTextCache[certEntry](1024), ocsp: newTextCache[[]byte](256)}
}

var defaultDecoder = &Decoder{Limits: DefaultLimits}

// Decode decodes body with the default limits.
func Decode(body []byte, h Hint) *Message { return defaultDecoder.Decode(body, h) }

// Core rules: how bodies parse and how field values are formed.
var (
	RuleNotXML        = DefineRule("decode", "DEC-NOT-XML", SevInfo, "roap-core §9.1", "A body that is not XML is not a DRM message; it passes untouched (an error when its content type claims ROAP)")
	RuleMalformed     = DefineRule("decode", "DEC-XML-MALFORMED", SevError, "XML 1.0 §2.1", "The body is not well-formed XML: truncated, mismatched tags, bad references")
	RuleDTD           = DefineRule("decode", "DEC-XML-DTD", SevError, "roap-core §2", "Document type declarations are refused; no entity is ever expanded (entity-bomb protection)")
	RuleLimit         = DefineRule("decode", "DEC-LIMIT", SevError, "README: limits", "A decode limit (size, depth, node count) was reached; the body passes undecoded")
	RuleUnknownRoot   = DefineRule("decode", "DEC-UNKNOWN-ROOT", SevInfo, "sce-token §3", "XML whose root is no DRM message this tool knows; shown as unknown")
	RuleProlog        = DefineRule("decode", "DEC-NOT-CANONICAL-PROLOG", SevInfo, "roap-core §2.6", "An XML declaration, BOM or comment is present; senders must transmit the exclusive canonical form")
	RuleRootCase      = DefineRule("decode", "DEC-ROOT-CASE", SevInfo, "roap-core §11; sce-token §7.2", "The root element name differs in case from the reference (tolerated deviation)")
	RuleRootNS        = DefineRule("decode", "DEC-ROOT-NS", SevWarning, "roap-core §2.1", "The root element is not in the namespace the reference gives it")
	RuleChildNS       = DefineRule("decode", "DEC-CHILD-NS", SevInfo, "roap-core §2.1", "A child element is namespace-qualified where the schema has it unqualified (tolerated deviation)")
	RuleXSIUndeclared = DefineRule("decode", "DEC-XSI-UNDECLARED", SevInfo, "roap-core §2.3", "A prefix (usually xsi) is used without a namespace declaration (tolerated deviation)")
	RuleChildCase     = DefineRule("decode", "DEC-CHILD-CASE", SevInfo, "sce-token §6.10", "A child element name differs in case from the reference (tolerated deviation)")
	RuleBase64        = DefineRule("decode", "DEC-VALUE-BASE64", SevError, "XML Schema base64Binary", "A base64Binary field does not decode")
	RuleDateTime      = DefineRule("decode", "DEC-VALUE-DATETIME", SevError, "roap-core §2.8", "A dateTime field is not an xs:dateTime (ROAP writes UTC with Z)")
	RuleDateTimeZone  = DefineRule("decode", "DEC-VALUE-DATETIME-ZONE", SevInfo, "roap-core §2.8", "A dateTime field has no Z or has a fraction; ROAP peers write YYYY-MM-DDThh:mm:ssZ")
	RuleAnyURI        = DefineRule("decode", "DEC-VALUE-URI", SevError, "XML Schema anyURI", "An anyURI field is not a URI")
	RuleInteger       = DefineRule("decode", "DEC-VALUE-INTEGER", SevError, "XML Schema integer", "An integer field is not an integer")
	RuleBoolean       = DefineRule("decode", "DEC-VALUE-BOOLEAN", SevError, "XML Schema boolean", "A boolean field is not true, false, 1 or 0")
	RuleNCName        = DefineRule("decode", "DEC-VALUE-NCNAME", SevWarning, "XML Schema ID", "An xs:ID value is not an NCName")
	RuleEmpty         = DefineRule("decode", "DEC-VALUE-EMPTY", SevError, "roap-core §5", "A mandatory field is present but empty")
	RuleIdentifier    = DefineRule("decode", "DEC-IDENTIFIER", SevError, "roap-core §3.2", "An Identifier must hold a keyIdentifier of type X509SPKIHash with a 20-byte SHA-1 hash")
	RuleIdentType     = DefineRule("decode", "DEC-IDENTIFIER-TYPE", SevWarning, "roap-core §3.2", "A keyIdentifier has no xsi:type (or not X509SPKIHash); the schema's KeyIdentifier type is abstract")
	RuleCert          = DefineRule("decode", "DEC-CERT", SevError, "roap-core §3.4", "A certificate in a chain is not a parseable DER X.509 certificate")
	RuleCertCount     = DefineRule("decode", "DEC-CERT-COUNT", SevError, "README: limits", "A certificate chain holds more certificates than the decode limit")
	RuleOCSPDER       = DefineRule("decode", "DEC-OCSP", SevError, "RFC 6960 §4.2.1", "An ocspResponse is not a DER OCSPResponse")
	RuleNonceLen      = DefineRule("decode", "DEC-NONCE-LENGTH", SevWarning, "roap-core §3.3 [K]", "A nonce is shorter than 14 octets")
	RuleStatusEnum    = DefineRule("decode", "ROAP-STATUS-ENUM", SevError, "roap-core §4; seed 001 Figure 3", "The status attribute is not a known roap:Status value")
	RuleStatusQuirk   = DefineRule("decode", "ROAP-STATUS-QUIRK", SevWarning, "roap-core §4", "A status value is a known misspelling (MalFormedRequest, UnsupportedCriticalExtension)")
	RuleStatusMissing = DefineRule("decode", "ROAP-STATUS-MISSING", SevError, "roap-core §3.1", "A response has no status attribute")
	RuleDADScope      = DefineRule("decode", "DOM-7.5-DAD-SCOPE", SevError, "seed 000 change 1; DRM 2.1", "DomainAccessDenied is only valid in ROAP JoinDomainResponse (never in leaveDomainResponse or the RDP Proxy Leave response)")
	RuleTokenScope    = DefineRule("decode", "XBS-9.2.3-TOKEN-STATUS-SCOPE", SevError, "seed 001 §9.2.3.1", "TokenConsumptionReportError and NoTokenConsumptionReport are only valid in TokenDeliveryResponse")
	RuleFailEmpty     = DefineRule("decode", "ROAP-FAIL-EMPTY", SevError, "roap-core §3.1", "A response whose status is not Success carries no child elements")
	RuleExtCritical   = DefineRule("decode", "ROAP-EXT-UNKNOWN-CRITICAL", SevWarning, "roap-core §3.5 [K]", "An extension this tool does not know is marked critical; the receiver must answer UnknownCriticalExtension")
	RuleExtType       = DefineRule("decode", "ROAP-EXT-TYPE", SevWarning, "roap-core §3.5", "An extension has no xsi:type, so its meaning cannot be known")
	RuleNested        = DefineRule("decode", "DEC-NESTED-DEPTH", SevError, "README: limits", "Messages are embedded deeper than the decode limit")
)

// handler decodes one message kind. root is the parsed root element.
type handler func(d *state, m *Message, root *Node)

type kindEntry struct {
	canonical string // the reference spelling of the root local name
	spaces    []string
	fn        handler
}

// kinds maps lower-cased root local names to their decoders. It is filled by init functions in
// this package's files and never changes afterwards.
var kinds = map[string]kindEntry{}

func registerKind(canonical string, spaces []string, fn handler) {
	k := strings.ToLower(canonical)
	if _, dup := kinds[k]; dup {
		panic("decode: kind registered twice: " + canonical)
	}
	kinds[k] = kindEntry{canonical: canonical, spaces: spaces, fn: fn}
}

// state is the per-call decoding context.
type state struct {
	certs     *certCache
	ocspTexts *ocspCache
	lim       Limits
	hint      Hint
	depth     int // nesting level of embedded messages
	// parsedClean says the tree came from ParseXML and no node in it has an unbound prefix.
	parsedClean bool
	// ints and nodes back the slices of the Found values Seq.Check returns: a message checks
	// several tables, and carving them from shared arrays saves two allocations per table.
	ints  []int
	nodes []*Node
}

// carve returns n elements of the free tail of *slab, growing it by a fresh array when full;
// earlier carvings keep the old array, so they are never overwritten.
func carve[T any](slab *[]T, n int) []T {
	if cap(*slab)-len(*slab) < n {
		*slab = make([]T, 0, max(n, 64))
	}
	l := len(*slab)
	*slab = (*slab)[:l+n]
	return (*slab)[l : l+n : l+n]
}

// Decode decodes body. It never panics on input and never returns nil. The Message keeps and
// shares body (Raw, and the strings of its field tree): body must not be modified afterwards.
func (dec *Decoder) Decode(body []byte, h Hint) *Message {
	return dec.decode(body, h, 0)
}

func (dec *Decoder) decode(body []byte, h Hint, depth int) (m *Message) {
	m = &Message{Family: FamilyUnknown, Kind: "unknown", Raw: body, ContentType: h.ContentType, IDs: map[string]string{}}
	defer func() {
		// A decoder bug must not take the proxy down or lose the flow: report it as a finding.
		if r := recover(); r != nil {
			m.Add(RuleMalformed.At("", "internal decoder error: %v", r))
			m.Reason = "internal decoder error"
		}
	}()
	d := &state{lim: dec.Limits, hint: h, depth: depth, certs: dec.certs, ocspTexts: dec.ocsp}
	if depth > dec.Limits.MaxNested {
		m.Reason = "embedded too deep"
		m.Add(RuleNested.At("", "message embedded %d levels deep; the limit is %d", depth, dec.Limits.MaxNested))
		return m
	}
	mt := mediaType(h.ContentType)
	claimsDRM := strings.HasPrefix(mt, "application/vnd.oma.drm.")
	if mt == "application/ocsp-request" || mt == "application/ocsp-response" {
		decodeOCSP(m, body, mt == "application/ocsp-request")
		return m
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n\xEF\xBB\xBF")
	// Trust the bytes over the label: an XML trigger mislabelled as WBXML still decodes (and
	// the content type mismatch is what a person needs to hear about, not a WBXML parse error).
	if looksWBXML(body) || (mt == MIMEWBXML && (len(trimmed) == 0 || trimmed[0] != '<')) {
		decodeWBXMLTrigger(d, m, body)
		return m
	}
	if len(trimmed) == 0 || trimmed[0] != '<' {
		m.Reason = "not XML"
		f := RuleNotXML.At("", "body (%d bytes, content type %q) is not XML", len(body), mt)
		if claimsDRM {
			f.Severity = SevError
			f.Message = fmt.Sprintf("content type %s claims a DRM message but the body (%d bytes) is not XML", mt, len(body))
		}
		m.Add(f)
		return m
	}
	doc, err := ParseXML(body, dec.Limits)
	if err != nil {
		se, _ := err.(*SyntaxError)
		var f Finding
		switch {
		case se != nil && se.Limit:
			m.Reason = "decode limit: " + se.Msg
			f = RuleLimit.At("", "%s; the body passes through undecoded", se.Error())
		case se != nil && se.DTD:
			m.Reason = "DTD refused"
			f = RuleDTD.At("", "%s", se.Error())
		default:
			m.Reason = "malformed XML: " + err.Error()
			f = RuleMalformed.At("", "%s", err.Error())
		}
		// An HTML page or other non-XML content passing through the proxy is no broken DRM
		// message; it is an error only when its label (or the lack of one) says XML or DRM.
		if mt != "" && !claimsDRM && !strings.Contains(mt, "xml") {
			f.Severity = SevInfo
			f.Message = fmt.Sprintf("%s body, not a DRM message (%s)", mt, f.Message)
		}
		m.Add(f)
		return m
	}
	m.Doc, m.Root = doc, doc.Root
	d.parsedClean = !doc.unbound
	dispatch(d, m, doc.Root)
	if m.Family != FamilyUnknown && (doc.Prolog || doc.BOM || doc.Comments) {
		var what []string
		if doc.BOM {
			what = append(what, "a byte order mark")
		}
		if doc.Prolog {
			what = append(what, "an XML declaration")
		}
		if doc.Comments {
			what = append(what, "comments")
		}
		m.Add(RuleProlog.At("", "the body carries %s, so it is not in canonical form as sent; signatures are checked over the bytes as received", strings.Join(what, " and ")))
	}
	return m
}

// dispatch classifies root and runs the matching kind decoder.
func dispatch(d *state, m *Message, root *Node) {
	local := strings.TrimSpace(root.Local)
	e, ok := kinds[strings.ToLower(local)]
	if !ok {
		e, ok = sceFallback(local) // rdp…Request/Response and <trigger>: generic SCE kinds
	}
	if !ok {
		m.Reason = fmt.Sprintf("unknown root element <%s> in namespace %q", root.QName(), root.Space)
		m.Namespace = root.Space
		m.Add(RuleUnknownRoot.At("/"+root.Local, "root element <%s> (namespace %q) is not a message this tool decodes", root.QName(), root.Space))
		return
	}
	m.Kind = e.canonical
	m.Namespace = root.Space
	if local != e.canonical {
		m.Add(RuleRootCase.At("/"+root.Local, "root element is <%s>; the reference spells it <%s>", local, e.canonical))
	}
	if len(e.spaces) > 0 {
		okNS := false
		for _, s := range e.spaces {
			if root.Space == s {
				okNS = true
			}
		}
		if !okNS {
			m.Add(RuleRootNS.At("/"+root.Local, "root element <%s> is in namespace %q; expected %s", root.QName(), root.Space, strings.Join(e.spaces, " or ")))
		}
	}
	if !d.parsedClean { // the parser already knows whether there is anything to find
		checkUnbound(m, root)
	}
	e.fn(d, m, root)
}

// checkUnbound reports, once per message, prefixes used without a declaration.
func checkUnbound(m *Message, root *Node) {
	var walk func(n *Node) *Node
	walk = func(n *Node) *Node {
		if n.UnboundPrefix {
			return n
		}
		for _, c := range n.Children {
			if c.Kind == ElementNode {
				if u := walk(c); u != nil {
					return u
				}
			}
		}
		return nil
	}
	if u := walk(root); u != nil {
		var prefixes []string
		if u.Prefix != "" {
			if _, ok := u.lookupNS(u.Prefix); !ok {
				prefixes = append(prefixes, u.Prefix)
			}
		}
		for _, a := range u.Attrs {
			if !a.IsNS && a.Prefix != "" {
				if _, ok := u.lookupNS(a.Prefix); !ok {
					prefixes = append(prefixes, a.Prefix)
				}
			}
		}
		m.Add(RuleXSIUndeclared.At(PathOf(u), "prefix %s used without a namespace declaration (first at <%s>); decoded by local name", strings.Join(prefixes, ", "), u.QName()))
	}
}

// mediaType returns the lower-cased media type of a Content-Type value without its parameters.
// It is what mime.ParseMediaType returns for a valid value and what the fallback for an invalid
// one took, without parsing parameters nobody reads (a map and several strings per message).
func mediaType(ct string) string {
	base, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(base))
}

// nested decodes an embedded message (for example the base64 leaveDomainRequest inside an RDP
// request) and attaches it to m.
func (d *state) nested(m *Message, body []byte, path string, h Hint) *Message {
	dec := &Decoder{Limits: d.lim, certs: d.certs, ocsp: d.ocspTexts}
	n := dec.decode(body, h, d.depth+1)
	n.NestedPath = path
	m.Nested = append(m.Nested, n)
	return n
}
