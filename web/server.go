// Package web serves the browser UI: a REST API over the captured flows, a websocket stream of
// numbered events with catch-up and resync, the rule catalogue, and the embedded single-page UI.
// Everything a flow carries is hostile input: the API returns it as JSON or as
// application/octet-stream attachments, and the UI renders it as text only.
package web

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
)

//go:embed static
var staticFS embed.FS

// Options configure the server.
type Options struct {
	Store *captures.Store
	// Token, when non-empty, is required on every request (cookie set by visiting /?token=…, an
	// "Authorization: Bearer" header, or ?token= on the websocket URL). NewToken makes one.
	Token string
	// Decoder rebuilds field trees from stored bytes (default limits when nil).
	Decoder *decode.Decoder
	// Version is shown in the UI and HAR exports.
	Version string
	// StreamQueue is each websocket client's event queue (default 4096).
	StreamQueue int
}

// Server is the UI's HTTP handler.
type Server struct {
	opt Options
	mux *http.ServeMux
}

// NewToken returns a random access token.
func NewToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NeedsToken reports whether addr (host:port) is reachable from other machines, in which case
// the UI must not be served without a token.
func NeedsToken(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// New returns the server.
func New(o Options) *Server {
	if o.Decoder == nil {
		o.Decoder = decode.NewDecoder(decode.DefaultLimits)
	}
	if o.StreamQueue <= 0 {
		o.StreamQueue = 4096
	}
	s := &Server{opt: o, mux: http.NewServeMux()}
	static, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(static)
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	s.mux.HandleFunc("GET /{$}", s.index)
	s.mux.HandleFunc("GET /api/flows", s.listFlows)
	s.mux.HandleFunc("GET /api/flows/{id}", s.getFlow)
	s.mux.HandleFunc("GET /api/flows/{id}/{half}/raw", s.rawBody)
	s.mux.HandleFunc("GET /api/related/{id}", s.related)
	s.mux.HandleFunc("GET /api/rules", s.rules)
	s.mux.HandleFunc("GET /api/export.har", s.har)
	s.mux.HandleFunc("POST /api/clear", s.clear)
	s.mux.HandleFunc("GET /api/stream", s.stream)
	return s
}

// csp allows only the embedded script and style: traffic content can never run.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	if !s.authorized(w, r) {
		http.Error(w, "roapproxy UI: a token is required (open the URL printed by roapproxy, which carries ?token=…)", http.StatusUnauthorized)
		return
	}
	s.mux.ServeHTTP(w, r)
}

const tokenCookie = "roapproxy_token"

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.opt.Token == "" {
		return true
	}
	ok := func(v string) bool { return subtle.ConstantTimeCompare([]byte(v), []byte(s.opt.Token)) == 1 }
	if c, err := r.Cookie(tokenCookie); err == nil && ok(c.Value) {
		return true
	}
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") && ok(strings.TrimPrefix(a, "Bearer ")) {
		return true
	}
	if t := r.URL.Query().Get("token"); t != "" && ok(t) {
		// First visit with the printed URL: keep the token in a cookie the page's scripts cannot
		// read, so it does not linger in links or the history.
		http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: t, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		return true
	}
	return false
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	b, err := staticFS.ReadFile("static/index.html")
	if err != nil {
		http.Error(w, "UI assets missing from this build", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	enc := json.NewEncoder(w)
	// The default escaping of <, > and & keeps JSON inert even if a browser were tricked into
	// rendering it as HTML.
	_ = enc.Encode(v)
}

// FilterFromQuery reads a flow filter from URL parameters: kind, id, domain, status,
// severity, leg, q.
func FilterFromQuery(q url.Values) captures.Filter {
	return captures.Filter{
		Kind: q.Get("kind"), ID: q.Get("id"), Domain: q.Get("domain"), Status: q.Get("status"),
		Severity: decode.Severity(q.Get("severity")), Leg: captures.Leg(q.Get("leg")), Text: q.Get("q"),
	}
}

func (s *Server) listFlows(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	offset, _ := strconv.Atoi(q.Get("offset"))
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 || limit > 5000 {
		limit = 500
	}
	writeJSON(w, s.opt.Store.List(FilterFromQuery(q), offset, limit))
}

func (s *Server) flowByID(w http.ResponseWriter, r *http.Request) (*captures.Flow, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "bad flow id", http.StatusBadRequest)
		return nil, false
	}
	f, ok := s.opt.Store.Get(id)
	if !ok {
		http.Error(w, "no such flow (it may have been evicted)", http.StatusNotFound)
		return nil, false
	}
	return f, true
}

// HalfDetail is one body of a flow in full.
type HalfDetail struct {
	Header    map[string][]string `json:"header"`
	Size      int64               `json:"size"`
	Truncated bool                `json:"truncated"`
	Text      string              `json:"text"` // the body as text (invalid UTF-8 replaced); for display only
	Binary    bool                `json:"binary"`
	Message   *MessageDetail      `json:"message,omitempty"`
}

// MessageDetail is a decoded message with its field tree.
type MessageDetail struct {
	*decode.Message
	Fields *decode.Field    `json:"fields,omitempty"`
	Nested []*MessageDetail `json:"nested,omitempty"`
}

// FlowDetail is GET /api/flows/{id}.
type FlowDetail struct {
	Summary  captures.Summary `json:"summary"`
	Flow     *captures.Flow   `json:"flow"`
	Request  HalfDetail       `json:"request"`
	Response HalfDetail       `json:"response"`
	Findings []decode.Finding `json:"findings"`
	Timings  captures.Timings `json:"timings"`
}

func (s *Server) messageDetail(stored *decode.Message, body []byte, h decode.Hint) *MessageDetail {
	if stored == nil {
		return nil
	}
	// The store keeps findings but not parse trees; decoding the same bytes again is pure and
	// yields the same tree.
	fresh := s.opt.Decoder.Decode(body, h)
	return detailOf(stored, fresh)
}

func detailOf(stored, fresh *decode.Message) *MessageDetail {
	d := &MessageDetail{Message: stored, Fields: fresh.Fields()}
	for i, n := range stored.Nested {
		var fn *decode.Message
		if i < len(fresh.Nested) {
			fn = fresh.Nested[i]
		} else {
			fn = &decode.Message{}
		}
		d.Nested = append(d.Nested, detailOf(n, fn))
	}
	return d
}

func halfDetail(h *captures.Half) HalfDetail {
	d := HalfDetail{Header: h.Header, Size: h.Size, Truncated: h.Truncated}
	if d.Header == nil {
		d.Header = map[string][]string{}
	}
	d.Binary = !isText(h.Body)
	d.Text = strings.ToValidUTF8(string(h.Body), "\uFFFD")
	return d
}

func isText(b []byte) bool {
	for _, c := range b {
		if c < 0x09 || (c > 0x0d && c < 0x20) || c == 0x7f {
			return false
		}
	}
	return true
}

func (s *Server) getFlow(w http.ResponseWriter, r *http.Request) {
	f, ok := s.flowByID(w, r)
	if !ok {
		return
	}
	d := FlowDetail{Summary: captures.Summarize(f), Flow: f, Findings: f.Findings, Timings: f.Timings}
	d.Request, d.Response = halfDetail(&f.Request), halfDetail(&f.Response)
	d.Request.Message = s.messageDetail(f.Request.Message, f.Request.Body, decode.Hint{ContentType: f.Request.ContentType(), Direction: decode.DirRequest})
	answers := ""
	if f.Request.Message != nil {
		answers = f.Request.Message.Kind
	}
	d.Response.Message = s.messageDetail(f.Response.Message, f.Response.Body, decode.Hint{ContentType: f.Response.ContentType(), Direction: decode.DirResponse, Answers: answers})
	writeJSON(w, d)
}

func (s *Server) rawBody(w http.ResponseWriter, r *http.Request) {
	f, ok := s.flowByID(w, r)
	if !ok {
		return
	}
	var b []byte
	switch r.PathValue("half") {
	case "request":
		b = f.Request.Body
	case "response":
		b = f.Response.Body
	default:
		http.Error(w, "half must be request or response", http.StatusBadRequest)
		return
	}
	// Exact bytes, never interpreted by the browser.
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", "attachment; filename=flow-"+r.PathValue("id")+"-"+r.PathValue("half")+".bin")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

// related returns the flows that share a correlation key with the given flow, oldest first:
// the exchange view draws them as one sequence.
func (s *Server) related(w http.ResponseWriter, r *http.Request) {
	f, ok := s.flowByID(w, r)
	if !ok {
		return
	}
	keys := map[string]bool{}
	for _, k := range f.Correlation {
		keys[k] = true
	}
	out := []captures.Summary{}
	for _, g := range s.opt.Store.Snapshot() {
		hit := g.ID == f.ID
		for _, k := range g.Correlation {
			if keys[k] {
				hit = true
			}
		}
		if hit {
			out = append(out, captures.Summarize(g))
		}
	}
	writeJSON(w, map[string]any{"keys": f.Correlation, "flows": out})
}

func (s *Server) rules(w http.ResponseWriter, r *http.Request) { writeJSON(w, decode.Rules()) }

func (s *Server) har(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", "attachment; filename=roapproxy-"+time.Now().UTC().Format("20060102-150405")+".har")
	_ = captures.WriteHAR(w, s.opt.Store.Snapshot(), s.opt.Version)
}

func (s *Server) clear(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	s.opt.Store.Clear()
	w.WriteHeader(http.StatusNoContent)
}

// sameOrigin refuses state changes and stream upgrades started by another site's page.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		// Non-browser clients (curl, scripts) send no Origin; browsers always do on these.
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}
