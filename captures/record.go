package captures

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Record is the durable form of a flow: the Flow with its bodies (which the live JSON leaves
// out) as base64.
type Record struct {
	*Flow
	RequestBody  []byte `json:"requestBody,omitempty"`
	ResponseBody []byte `json:"responseBody,omitempty"`
}

// Recorder appends flows as JSON lines to a writer on its own goroutine. Record never blocks:
// when the queue is full the flow is counted as dropped and a gap marker is written later, so a
// slow disk shows up in the file instead of in the proxy's latency.
type Recorder struct {
	q       chan *Flow
	w       *bufio.Writer
	c       io.Closer
	dropped atomic.Int64
	done    chan struct{}
	err     error
	mu      sync.Mutex
}

// NewRecorder starts a recorder writing to w (closed by Close when it is an io.Closer).
func NewRecorder(w io.Writer, queue int) *Recorder {
	if queue < 1 {
		queue = 4096
	}
	r := &Recorder{q: make(chan *Flow, queue), w: bufio.NewWriterSize(w, 64<<10), done: make(chan struct{})}
	if c, ok := w.(io.Closer); ok {
		r.c = c
	}
	go r.loop()
	return r
}

// Record queues f for writing.
func (r *Recorder) Record(f *Flow) {
	select {
	case r.q <- f:
	default:
		r.dropped.Add(1)
	}
}

// Dropped returns how many flows could not be queued.
func (r *Recorder) Dropped() int64 { return r.dropped.Load() }

func (r *Recorder) loop() {
	defer close(r.done)
	enc := json.NewEncoder(r.w)
	var reported int64
	for f := range r.q {
		if d := r.dropped.Load(); d != reported {
			r.setErr(enc.Encode(map[string]any{"gap": d - reported, "note": "flows dropped: the recorder could not keep up"}))
			reported = d
		}
		r.setErr(enc.Encode(Record{Flow: f, RequestBody: f.Request.Body, ResponseBody: f.Response.Body}))
		if len(r.q) == 0 {
			r.setErr(r.w.Flush())
		}
	}
	r.setErr(r.w.Flush())
}

func (r *Recorder) setErr(err error) {
	if err != nil {
		r.mu.Lock()
		if r.err == nil {
			r.err = err
		}
		r.mu.Unlock()
	}
}

// Close flushes what is queued and closes the underlying writer.
func (r *Recorder) Close() error {
	close(r.q)
	<-r.done
	if r.c != nil {
		r.setErr(r.c.Close())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// ReadRecords reads a JSON-lines recording back, skipping gap markers.
func ReadRecords(rd io.Reader) ([]*Flow, error) {
	dec := json.NewDecoder(rd)
	var out []*Flow
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			return out, nil
		} else if err != nil {
			return out, fmt.Errorf("recording line %d: %w", len(out)+1, err)
		}
		var probe struct {
			Gap *int64 `json:"gap"`
		}
		if json.Unmarshal(raw, &probe) == nil && probe.Gap != nil {
			continue
		}
		rec := Record{Flow: &Flow{}}
		if err := json.Unmarshal(raw, &rec); err != nil {
			return out, fmt.Errorf("recording line %d: %w", len(out)+1, err)
		}
		rec.Flow.Request.Body, rec.Flow.Response.Body = rec.RequestBody, rec.ResponseBody
		out = append(out, rec.Flow)
	}
}

// HAR 1.2 export: what Charles, Fiddler, browsers and mitmproxy read. DRM detail (kinds,
// findings) goes into the "_roapproxy" custom field HAR allows.

type harLog struct {
	Log struct {
		Version string     `json:"version"`
		Creator harCreator `json:"creator"`
		Entries []harEntry `json:"entries"`
	} `json:"log"`
}

type harCreator struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type harNV struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type harContent struct {
	Size     int64  `json:"size"`
	MimeType string `json:"mimeType"`
	Text     string `json:"text,omitempty"`
	Encoding string `json:"encoding,omitempty"`
}

type harEntry struct {
	Started string  `json:"startedDateTime"`
	Time    float64 `json:"time"`
	Request struct {
		Method      string      `json:"method"`
		URL         string      `json:"url"`
		HTTPVersion string      `json:"httpVersion"`
		Headers     []harNV     `json:"headers"`
		QueryString []harNV     `json:"queryString"`
		Cookies     []harNV     `json:"cookies"`
		HeadersSize int         `json:"headersSize"`
		BodySize    int64       `json:"bodySize"`
		PostData    *harContent `json:"postData,omitempty"`
	} `json:"request"`
	Response struct {
		Status      int        `json:"status"`
		StatusText  string     `json:"statusText"`
		HTTPVersion string     `json:"httpVersion"`
		Headers     []harNV    `json:"headers"`
		Cookies     []harNV    `json:"cookies"`
		Content     harContent `json:"content"`
		RedirectURL string     `json:"redirectURL"`
		HeadersSize int        `json:"headersSize"`
		BodySize    int64      `json:"bodySize"`
	} `json:"response"`
	Cache   struct{}       `json:"cache"`
	Timings map[string]any `json:"timings"`
	Extra   map[string]any `json:"_roapproxy"`
}

func harHeaders(h http.Header) []harNV {
	out := []harNV{}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			out = append(out, harNV{k, v})
		}
	}
	return out
}

func harBody(b []byte, ct string) harContent {
	c := harContent{Size: int64(len(b)), MimeType: ct}
	if utf8.Valid(b) && isText(b) {
		c.Text = string(b)
	} else {
		c.Text, c.Encoding = base64.StdEncoding.EncodeToString(b), "base64"
	}
	return c
}

func isText(b []byte) bool {
	for _, c := range b {
		if c < 0x09 || (c > 0x0d && c < 0x20) {
			return false
		}
	}
	return true
}

func ms(a, b time.Time) float64 {
	if a.IsZero() || b.IsZero() {
		return -1
	}
	return float64(b.Sub(a).Microseconds()) / 1000
}

// WriteHAR writes flows as a HAR 1.2 log.
func WriteHAR(w io.Writer, flows []*Flow, version string) error {
	var h harLog
	h.Log.Version = "1.2"
	h.Log.Creator = harCreator{Name: "roapproxy", Version: version}
	h.Log.Entries = []harEntry{}
	for _, f := range flows {
		var e harEntry
		e.Started = f.Timings.Received.UTC().Format(time.RFC3339Nano)
		e.Time = ms(f.Timings.Received, f.Timings.Done)
		e.Request.Method, e.Request.URL, e.Request.HTTPVersion = f.Method, f.URL, f.Proto
		e.Request.Headers, e.Request.QueryString, e.Request.Cookies = harHeaders(f.Request.Header), []harNV{}, []harNV{}
		e.Request.HeadersSize, e.Request.BodySize = -1, f.Request.Size
		if len(f.Request.Body) > 0 {
			c := harBody(f.Request.Body, f.Request.ContentType())
			e.Request.PostData = &c
		}
		e.Response.Status, e.Response.StatusText, e.Response.HTTPVersion = f.StatusCode, http.StatusText(f.StatusCode), f.Proto
		e.Response.Headers, e.Response.Cookies = harHeaders(f.Response.Header), []harNV{}
		e.Response.Content = harBody(f.Response.Body, f.Response.ContentType())
		e.Response.HeadersSize, e.Response.BodySize = -1, f.Response.Size
		e.Timings = map[string]any{"send": ms(f.Timings.Received, f.Timings.SentUpstream), "wait": ms(f.Timings.SentUpstream, f.Timings.FirstByte), "receive": ms(f.Timings.FirstByte, f.Timings.Done)}
		sum := Summarize(f)
		e.Extra = map[string]any{"leg": f.Leg, "reqKind": sum.ReqKind, "respKind": sum.RespKind, "status": sum.Status, "verdict": sum.Verdict, "findings": f.AllFindings(), "correlation": f.Correlation}
		h.Log.Entries = append(h.Log.Entries, e)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(h)
}
