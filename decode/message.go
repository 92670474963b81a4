// Package decode turns HTTP bodies seen between DRM Agents, Rights Issuers and Domain Enforcement
// Agents into Messages: ROAP PDUs, ROAP triggers (XML and WBXML), SCE GEN/RDP messages,
// drmTriggers and token messages, each with its kind, sender role, identifying values, an ordered
// field tree with stable paths, parsed certificates and OCSP responses, the byte span of its
// signature, embedded messages, and structural findings. It also builds canonical messages for
// the simulated peers and for rewrites.
//
// The package is pure: no network, no clock, no global mutable state. It never refuses input:
// anything it cannot make sense of becomes a Message of kind "unknown" with the reason.
package decode

import (
	"crypto/x509"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Family groups message kinds by protocol.
type Family string

// Families.
const (
	FamilyROAP    Family = "roap"         // ROAP PDUs (DRM 2.0/2.1)
	FamilyTrigger Family = "roap-trigger" // ROAP triggers, XML or WBXML
	FamilySCE     Family = "sce"          // SCE GEN/RDP requests, responses and drmTriggers
	FamilyToken   Family = "token"        // XBS / SRM 1.1 token messages
	FamilyUnknown Family = "unknown"
)

// Role is the party that sends a message.
type Role string

// Roles.
const (
	RoleDevice  Role = "device"
	RoleRI      Role = "ri"
	RoleDEA     Role = "dea"
	RoleUnknown Role = ""
)

// Severity of a finding.
type Severity string

// Severities, worst first.
const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
	SevInfo    Severity = "info"
)

// Rank orders severities: error 3, warning 2, info 1, anything else 0.
func (s Severity) Rank() int {
	switch s {
	case SevError:
		return 3
	case SevWarning:
		return 2
	case SevInfo:
		return 1
	}
	return 0
}

// Rule is a catalogue entry: a stable ID, a default severity, what it checks and where the spec
// says so. Packages define rules once, at package initialization, with DefineRule.
type Rule struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	Check    string   `json:"check"`
	Ref      string   `json:"ref"`
	Package  string   `json:"package"`
}

var (
	catalogueMu sync.RWMutex
	catalogue   = map[string]Rule{}
)

// DefineRule adds a rule to the catalogue and returns it. It panics on a duplicate ID, which can
// only be a programming error caught by the first test run (rules are package-level variables).
func DefineRule(pkg, id string, sev Severity, ref, check string) Rule {
	catalogueMu.Lock()
	defer catalogueMu.Unlock()
	if _, dup := catalogue[id]; dup {
		panic("decode: duplicate rule ID " + id)
	}
	r := Rule{ID: id, Severity: sev, Check: check, Ref: ref, Package: pkg}
	catalogue[id] = r
	return r
}

// Rules returns the catalogue sorted by package, then ID.
func Rules() []Rule {
	catalogueMu.RLock()
	defer catalogueMu.RUnlock()
	out := make([]Rule, 0, len(catalogue))
	for _, r := range catalogue {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Package != out[j].Package {
			return out[i].Package < out[j].Package
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// LookupRule returns the catalogue entry for id.
func LookupRule(id string) (Rule, bool) {
	catalogueMu.RLock()
	defer catalogueMu.RUnlock()
	r, ok := catalogue[id]
	return r, ok
}

// Finding is one observation about a message: which rule, how bad, what a person should know,
// which field it is about and where the spec says so.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	Path     string   `json:"path,omitempty"`
	Ref      string   `json:"ref,omitempty"`
}

// At makes a finding of rule r about the field at path.
func (r Rule) At(path, format string, args ...any) Finding {
	return Finding{Rule: r.ID, Severity: r.Severity, Message: fmt.Sprintf(format, args...), Path: path, Ref: r.Ref}
}

// AtSev is At with a severity other than the rule's default (for rules whose weight depends on
// context, such as an inferred expectation that is only a warning).
func (r Rule) AtSev(sev Severity, path, format string, args ...any) Finding {
	f := r.At(path, format, args...)
	f.Severity = sev
	return f
}

// Span is a half-open byte range [Start, End) of a message's raw bytes.
type Span struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Chain is a certificate chain carried in a message.
type Chain struct {
	Path  string              `json:"path"`
	Certs []*x509.Certificate `json:"-"`
	DER   [][]byte            `json:"-"`
}

// OCSPBlob is a DER OCSP response carried in a message. It is parsed for display only (no
// signature check); verify/ judges it.
type OCSPBlob struct {
	Path string `json:"path"`
	DER  []byte `json:"-"`
}

// Message is one decoded body.
type Message struct {
	Family      Family            `json:"family"`
	Kind        string            `json:"kind"`
	Variant     string            `json:"variant,omitempty"`
	Role        Role              `json:"role"`
	Status      string            `json:"status,omitempty"`
	Namespace   string            `json:"namespace,omitempty"`
	ContentType string            `json:"contentType,omitempty"`
	IDs         map[string]string `json:"ids"`
	Reason      string            `json:"reason,omitempty"` // why the kind is unknown
	Signature   *Span             `json:"signature,omitempty"`
	Chains      []Chain           `json:"chains,omitempty"`
	OCSP        []OCSPBlob        `json:"ocsp,omitempty"`
	Nested      []*Message        `json:"nested,omitempty"`
	Findings    []Finding         `json:"findings"`
	// NestedPath is, for an embedded message, the field path it was decoded from.
	NestedPath string `json:"nestedPath,omitempty"`

	Raw  []byte    `json:"-"`
	Doc  *Document `json:"-"`
	Root *Node     `json:"-"`

	holds atomic.Int32 // see Hold
}

// ID returns the identifying value named key ("deviceID", "nonce", …) or "".
func (m *Message) ID(key string) string {
	if m == nil || m.IDs == nil {
		return ""
	}
	return m.IDs[key]
}

// setID records an identifying value. key must be a constant of this package, never text from
// a message: stored messages keep the keys as they are and copy only the values out of the parse
// tree (captures.Lighten).
func (m *Message) setID(key, v string) {
	if v == "" {
		return
	}
	if m.IDs == nil {
		m.IDs = map[string]string{}
	}
	m.IDs[key] = v
}

// Add appends findings.
func (m *Message) Add(fs ...Finding) { m.Findings = append(m.Findings, fs...) }

// Worst returns the highest severity among the message's findings and those of its nested
// messages ("" when there are none).
func (m *Message) Worst() Severity {
	var w Severity
	for _, f := range m.Findings {
		if f.Severity.Rank() > w.Rank() {
			w = f.Severity
		}
	}
	for _, n := range m.Nested {
		if s := n.Worst(); s.Rank() > w.Rank() {
			w = s
		}
	}
	return w
}

// Has reports whether a finding of rule id is present (not looking into nested messages).
func (m *Message) Has(id string) bool {
	for _, f := range m.Findings {
		if f.Rule == id {
			return true
		}
	}
	return false
}

// SignedBytes returns the raw bytes with the top-level signature element cut out, which is what
// ROAP senders sign ("the message without its signature element", sent already canonical).
func (m *Message) SignedBytes() []byte {
	if m.Signature == nil {
		return m.Raw
	}
	out := make([]byte, 0, len(m.Raw)-(m.Signature.End-m.Signature.Start))
	out = append(out, m.Raw[:m.Signature.Start]...)
	return append(out, m.Raw[m.Signature.End:]...)
}

// SignedParts returns SignedBytes as the (at most two) pieces of Raw around the signature
// element, without copying.
func (m *Message) SignedParts() [][]byte {
	if m.Signature == nil {
		return [][]byte{m.Raw}
	}
	return [][]byte{m.Raw[:m.Signature.Start:m.Signature.Start], m.Raw[m.Signature.End:]}
}

// CanonicalWithoutSignature returns the exclusive canonical form of the parsed message with its
// top-level signature element removed: what a sender that re-serialized would have signed.
func (m *Message) CanonicalWithoutSignature() []byte {
	if m.Root == nil {
		return nil
	}
	root := m.Root
	return Canonical(root, func(n *Node) bool { return n.Parent == root && n.Local == "signature" })
}

// Field is the serializable form of the field tree: elements and attributes with stable paths
// (local names, 1-based [n] only where a name repeats among siblings, @ for attributes).
type Field struct {
	Path     string   `json:"path"`
	Name     string   `json:"name"`
	Value    string   `json:"value,omitempty"`
	Attr     bool     `json:"attr,omitempty"`
	Span     Span     `json:"span"`
	Children []*Field `json:"children,omitempty"`
}

// Fields returns the message's field tree (nil for a body that did not parse as XML).
func (m *Message) Fields() *Field {
	if m.Root == nil {
		return nil
	}
	return fieldOf(m.Root, "/"+m.Root.Local)
}

func fieldOf(n *Node, path string) *Field {
	f := &Field{Path: path, Name: n.QName(), Span: Span{n.Start, n.End}}
	for _, a := range n.Attrs {
		if a.IsNS {
			continue
		}
		name := a.Local
		if a.Prefix != "" {
			name = a.Prefix + ":" + a.Local
		}
		f.Children = append(f.Children, &Field{Path: path + "/@" + a.Local, Name: name, Value: a.Value, Attr: true, Span: Span{n.Start, n.Inner}})
	}
	els := n.Elements()
	if len(els) == 0 {
		f.Value = n.TextContent()
		return f
	}
	count := map[string]int{}
	for _, c := range els {
		count[c.Local]++
	}
	seen := map[string]int{}
	for _, c := range els {
		seen[c.Local]++
		p := path + "/" + c.Local
		if count[c.Local] > 1 {
			p += fmt.Sprintf("[%d]", seen[c.Local])
		}
		f.Children = append(f.Children, fieldOf(c, p))
	}
	return f
}

// PathOf returns the stable field path of element n (the same path Fields gives it).
func PathOf(n *Node) string {
	if n == nil {
		return ""
	}
	// The segments are gathered first so the path costs one allocation: paths are built for
	// every finding and every chain, and building them piece by piece was a hot spot.
	type segment struct {
		local   string
		idx     int
		indexed bool // the name repeats among the siblings
	}
	var buf [16]segment
	segs := buf[:0]
	size := 0
	for e := n; e != nil; e = e.Parent {
		sg := segment{local: e.Local}
		if e.Parent != nil {
			same := 0
			for _, s := range e.Parent.Children {
				if s.Kind == ElementNode && s.Local == e.Local {
					same++
					if s == e {
						sg.idx = same
					}
				}
			}
			if same > 1 {
				sg.indexed = true
				size += 2 + decimalLen(sg.idx)
			}
		}
		size += 1 + len(e.Local)
		segs = append(segs, sg)
	}
	var b strings.Builder
	b.Grow(size)
	var num [20]byte
	for i := len(segs) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(segs[i].local)
		if segs[i].indexed {
			b.WriteByte('[')
			b.Write(strconv.AppendInt(num[:0], int64(segs[i].idx), 10))
			b.WriteByte(']')
		}
	}
	return b.String()
}

func decimalLen(v int) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}
