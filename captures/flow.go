// Package captures holds what the proxy saw: the Flow record of one HTTP exchange with its
// decoded messages and findings, a bounded in-memory store of recent flows, a numbered event
// stream whose publishers never block, a JSON-lines recorder, and HAR export.
package captures

import (
	"iter"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unsafe"

	"github.com/roapproxy/roapproxy/decode"
)

// Leg names the pair of parties an exchange runs between, client first.
type Leg string

// Legs of OMA DRM traffic.
const (
	LegDeviceRI Leg = "device-ri" // DRM Agent ↔ Rights Issuer (ROAP, triggers, tokens)
	LegRIDEA    Leg = "ri-dea"    // RI ↔ DEA (SCE RDP requests)
	LegDEARI    Leg = "dea-ri"    // DEA → RI (drmTrigger)
	LegOCSP     Leg = "ocsp"      // anyone ↔ OCSP responder
	LegOther    Leg = "other"     // not DRM traffic
)

// Timings of one exchange.
type Timings struct {
	Received     time.Time `json:"received"`              // request fully read from the client
	SentUpstream time.Time `json:"sentUpstream,omitzero"` // request handed to the upstream connection
	FirstByte    time.Time `json:"firstByte,omitzero"`    // upstream response headers arrived
	// Responded is when the upstream response was fully read, before it is forwarded. Unlike
	// Done it is causally ordered across nested exchanges: an RI cannot answer the device before
	// the proxy has read the DEA's answer it forwards to that RI.
	Responded time.Time `json:"responded,omitzero"`
	Done      time.Time `json:"done,omitzero"` // response fully written to the client
}

// Half is one direction of an exchange.
type Half struct {
	Header    http.Header     `json:"header,omitempty"`
	Body      []byte          `json:"-"`
	Size      int64           `json:"size"`
	Truncated bool            `json:"truncated,omitempty"` // larger than the capture limit; only a prefix is kept
	Message   *decode.Message `json:"message,omitempty"`   // decoded body (without its parse tree)
}

// ContentType returns the Content-Type header of the half.
func (h *Half) ContentType() string { return h.Header.Get("Content-Type") }

// Flow is one HTTP exchange on one leg.
type Flow struct {
	ID          uint64           `json:"id"`
	Mode        string           `json:"mode"` // forward, mitm, reverse
	Leg         Leg              `json:"leg"`
	Client      string           `json:"client"`
	Upstream    string           `json:"upstream"`
	Method      string           `json:"method"`
	URL         string           `json:"url"`
	Proto       string           `json:"proto"`
	Request     Half             `json:"request"`
	StatusCode  int              `json:"statusCode"`
	Response    Half             `json:"response"`
	Findings    []decode.Finding `json:"findings"` // transport and cross-message findings
	Correlation []string         `json:"correlation,omitempty"`
	Timings     Timings          `json:"timings"`
	Error       string           `json:"error,omitempty"`
	Rules       []string         `json:"rules,omitempty"` // rules that changed or held this flow

	counted int64 // what the store added to its byte count for this flow (see footprint)
}

// Messages returns the decoded request and response messages that exist.
func (f *Flow) Messages() []*decode.Message {
	var out []*decode.Message
	if f.Request.Message != nil {
		out = append(out, f.Request.Message)
	}
	if f.Response.Message != nil {
		out = append(out, f.Response.Message)
	}
	return out
}

// AllFindings returns the flow's findings followed by those of its messages (nested included).
func (f *Flow) AllFindings() []decode.Finding {
	var out []decode.Finding
	for x := range f.EachFinding() {
		out = append(out, x)
	}
	return out
}

// EachFinding yields what AllFindings returns, in the same order, without collecting it: the
// summary of every stored flow reads them once.
func (f *Flow) EachFinding() iter.Seq[decode.Finding] {
	return func(yield func(decode.Finding) bool) {
		for _, x := range f.Findings {
			if !yield(x) {
				return
			}
		}
		for _, m := range [2]*decode.Message{f.Request.Message, f.Response.Message} {
			if m != nil && !eachMessageFinding(m, yield) {
				return
			}
		}
	}
}

func eachMessageFinding(m *decode.Message, yield func(decode.Finding) bool) bool {
	for _, x := range m.Findings {
		if !yield(x) {
			return false
		}
	}
	for _, n := range m.Nested {
		if !eachMessageFinding(n, yield) {
			return false
		}
	}
	return true
}

// Verdict is the worst severity of all the flow's findings ("" when there are none).
func (f *Flow) Verdict() decode.Severity {
	var w decode.Severity
	for x := range f.EachFinding() {
		if x.Severity.Rank() > w.Rank() {
			w = x.Severity
		}
	}
	return w
}

// Summary is the row the flow table and the event stream show.
type Summary struct {
	ID         uint64          `json:"id"`
	Time       time.Time       `json:"time"`
	Leg        Leg             `json:"leg"`
	Mode       string          `json:"mode"`
	Client     string          `json:"client"`
	Method     string          `json:"method"`
	Host       string          `json:"host"`
	Path       string          `json:"path"`
	StatusCode int             `json:"statusCode"`
	ReqKind    string          `json:"reqKind,omitempty"`
	RespKind   string          `json:"respKind,omitempty"`
	Variant    string          `json:"variant,omitempty"`
	Status     string          `json:"status,omitempty"` // protocol status (roap:Status)
	Verdict    decode.Severity `json:"verdict,omitempty"`
	Errors     int             `json:"errors"`
	Warnings   int             `json:"warnings"`
	Size       int64           `json:"size"`
	DurationMS float64         `json:"durationMs"`
	// RespondedMS is Timings.Responded after Time, in milliseconds (0 when no response came).
	RespondedMS float64           `json:"respondedMs,omitempty"`
	IDs         map[string]string `json:"ids,omitempty"`
	Correlation []string          `json:"correlation,omitempty"`
	Error       string            `json:"error,omitempty"`
	Rules       []string          `json:"rules,omitempty"`
	// Findings lists the rule IDs of the flow's findings, so filters and the table need not
	// load the flow.
	Findings []string `json:"findings,omitempty"`
}

// Summarize builds the table row of f.
func Summarize(f *Flow) Summary {
	s := Summary{ID: f.ID, Time: f.Timings.Received, Leg: f.Leg, Mode: f.Mode, Client: f.Client, Method: f.Method,
		StatusCode: f.StatusCode, Size: f.Request.Size + f.Response.Size, Correlation: f.Correlation, Error: f.Error, Rules: f.Rules}
	if u, err := url.Parse(f.URL); err == nil {
		s.Host, s.Path = u.Host, u.Path
		if u.RawQuery != "" {
			s.Path += "?" + u.RawQuery
		}
	}
	if !f.Timings.Done.IsZero() {
		s.DurationMS = float64(f.Timings.Done.Sub(f.Timings.Received).Microseconds()) / 1000
	}
	if !f.Timings.Responded.IsZero() {
		s.RespondedMS = float64(f.Timings.Responded.Sub(f.Timings.Received).Microseconds()) / 1000
	}
	// The request's identifiers win over the response's.
	var ids map[string]string
	for _, m := range [2]*decode.Message{f.Request.Message, f.Response.Message} {
		if m == nil {
			continue
		}
		for k, v := range m.IDs {
			if ids == nil {
				ids = make(map[string]string, len(m.IDs))
			}
			if _, seen := ids[k]; !seen {
				ids[k] = v
			}
		}
	}
	if m := f.Request.Message; m != nil && m.Kind != "unknown" {
		s.ReqKind = m.Kind
		s.Variant = m.Variant
		if m.Status != "" {
			s.Status = m.Status
		}
	}
	if m := f.Response.Message; m != nil && m.Kind != "unknown" {
		s.RespKind = m.Kind
		if m.Variant != "" {
			s.Variant = m.Variant
		}
		if m.Status != "" {
			s.Status = m.Status
		}
	}
	if len(ids) > 0 {
		s.IDs = ids
	}
	for x := range f.EachFinding() {
		switch x.Severity {
		case decode.SevError:
			s.Errors++
		case decode.SevWarning:
			s.Warnings++
		}
		if x.Severity.Rank() > s.Verdict.Rank() {
			s.Verdict = x.Severity
		}
		dup := false
		for _, r := range s.Findings {
			if r == x.Rule {
				dup = true
				break
			}
		}
		if !dup {
			s.Findings = append(s.Findings, x.Rule)
		}
	}
	return s
}

// Filter selects flows. Empty fields match everything.
type Filter struct {
	Kind     string // request or response kind (case-insensitive substring)
	ID       string // any identifying value (device ID, RI ID, domain, nonce …), exact or substring
	Domain   string
	Status   string // protocol status, exact (case-insensitive)
	Severity decode.Severity
	Leg      Leg
	Text     string // free text over URL, kinds, IDs, findings
}

// Match reports whether the summary s (and flow f, for free text over findings) passes.
func (q Filter) Match(s *Summary, f *Flow) bool {
	if q.Kind != "" && !containsFold(s.ReqKind, q.Kind) && !containsFold(s.RespKind, q.Kind) && !containsFold(s.Variant, q.Kind) {
		return false
	}
	if q.Status != "" && !strings.EqualFold(s.Status, q.Status) {
		return false
	}
	if q.Leg != "" && s.Leg != q.Leg {
		return false
	}
	if q.Severity != "" && s.Verdict.Rank() < q.Severity.Rank() {
		return false
	}
	if q.Domain != "" && !containsFold(s.IDs["domainID"], q.Domain) {
		return false
	}
	if q.ID != "" {
		hit := false
		for _, v := range s.IDs {
			if strings.Contains(v, q.ID) {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	if q.Text != "" {
		if !(containsFold(s.Host+s.Path, q.Text) || containsFold(s.ReqKind, q.Text) || containsFold(s.RespKind, q.Text) ||
			containsFold(s.Status, q.Text) || containsFold(string(s.Leg), q.Text)) {
			hit := false
			for _, v := range s.IDs {
				if containsFold(v, q.Text) {
					hit = true
					break
				}
			}
			for _, r := range s.Findings {
				if containsFold(r, q.Text) {
					hit = true
					break
				}
			}
			if !hit && f != nil {
				for _, x := range f.AllFindings() {
					if containsFold(x.Rule, q.Text) || containsFold(x.Message, q.Text) {
						hit = true
						break
					}
				}
			}
			if !hit {
				return false
			}
		}
	}
	return true
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// Lighten reduces a decoded message (and its nested messages) to what a stored flow needs: its
// classification, IDs, findings and spans. Parse trees, parsed certificates and DER copies are
// dropped, and the strings kept are copied: the decoder's strings are slices of the body, and
// summaries (which the bus keeps long after the store let the flow go) share them, so keeping
// any would keep the body alive. The field tree is rebuilt on demand by decoding the stored
// bytes again, which is pure and gives the same result.
func Lighten(m *decode.Message) {
	lighten(m, true)
}

func lighten(m *decode.Message, top bool) {
	if m == nil {
		return
	}
	m.Doc, m.Root = nil, nil
	if !top {
		m.Raw = nil // a decoded embedded body; the outer body holds its bytes
	}
	for i := range m.Chains {
		m.Chains[i] = decode.Chain{Path: m.Chains[i].Path}
	}
	for i := range m.OCSP {
		m.OCSP[i] = decode.OCSPBlob{Path: m.OCSP[i].Path}
	}
	// The copies share one buffer: a stored message's strings are then one object for the
	// collector to mark on every cycle rather than some twenty (they were half the live objects
	// of a loaded proxy).
	n := 0
	eachString(m, func(s *string) { n += len(*s) })
	for _, v := range m.IDs {
		n += len(v)
	}
	buf := make([]byte, 0, n)
	keep := func(s string) string {
		if s == "" {
			return ""
		}
		at := len(buf)
		buf = append(buf, s...) // within capacity: buf never moves
		return unsafe.String(&buf[at], len(s))
	}
	eachString(m, func(s *string) { *s = keep(*s) })
	// The keys are decode's constants (see its setID), so only the values need copying, and
	// the map is kept rather than rebuilt.
	for k, v := range m.IDs {
		m.IDs[k] = keep(v)
	}
	for _, nm := range m.Nested {
		lighten(nm, false)
	}
}

// eachString calls fn with each string field of m (not its IDs or nested messages) that a
// stored flow keeps.
func eachString(m *decode.Message, fn func(*string)) {
	for _, s := range []*string{&m.Kind, &m.Variant, &m.Status, &m.Namespace, &m.Reason, &m.NestedPath} {
		fn(s)
	}
	for i := range m.Findings {
		fn(&m.Findings[i].Message)
		fn(&m.Findings[i].Path)
	}
	for i := range m.Chains {
		fn(&m.Chains[i].Path)
	}
	for i := range m.OCSP {
		fn(&m.OCSP[i].Path)
	}
}

// footprint estimates what a stored flow keeps alive: its bodies' buffers plus the headers,
// summary, IDs, findings and bookkeeping around them. The fixed part is measured: about 12 KiB
// for a verified 2-pass RO exchange, in a heap profile of roapload's 100,000-flow run
// (2026-12-03). It was 6 KiB, which let the store hold a third more than its budget.
func footprint(f *Flow) int64 {
	n := int64(cap(f.Request.Body)+cap(f.Response.Body)) + 12<<10
	for _, m := range [2]*decode.Message{f.Request.Message, f.Response.Message} {
		if m != nil {
			n += int64(len(m.Findings)) * 160
		}
	}
	return n
}
