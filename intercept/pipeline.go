// Package intercept is the live proxy: a forward proxy (plain HTTP, and HTTPS through CONNECT
// with interception by the roapproxy CA) and reverse listeners in front of one upstream each.
// Every exchange runs through one pipeline that reads both bodies and forwards the original
// bytes untouched; an analyser behind it decodes every request and response in parallel, judges
// them in the order they passed, and hands the finished Flow to the capture store.
package intercept

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
)

// Judge looks at a decoded flow half and returns findings about it plus correlation keys that
// tie it to related flows. Judge is called by the pipeline's analyser, one half at a time in the
// order the halves passed the proxy; Tick runs concurrently with it. Once a flow is judged and
// stored, the pipeline recycles its messages' parse trees (decode.Recycle): a judge that keeps a
// message, or any node of it, past the call must Hold it.
type Judge interface {
	Judge(f *captures.Flow, dir decode.Direction) (findings []decode.Finding, correlation []string)
	// Tick is called periodically; it returns findings that became due for earlier flows (a
	// window that expired without the expected message).
	Tick(now time.Time) []Late
}

// Late is a finding about an already stored flow.
type Late struct {
	FlowID   uint64
	Findings []decode.Finding
}

// Rules defined by the proxy itself.
var (
	RuleUpstream = decode.DefineRule("intercept", "PROXY-UPSTREAM", decode.SevError, "README: proxy",
		"The upstream could not be reached or failed mid-exchange; the client got a 502 from roapproxy")
	RuleBodyLimit = decode.DefineRule("intercept", "PROXY-BODY-LIMIT", decode.SevInfo, "README: proxy",
		"A body larger than the capture limit streamed through undecoded")
	RuleClientBody = decode.DefineRule("intercept", "PROXY-CLIENT-BODY", decode.SevError, "README: proxy",
		"The client's request body could not be read completely")
)

// Config configures a Pipeline.
type Config struct {
	Store   *captures.Store
	Judge   Judge // nil: decode only, no verification
	Decoder *decode.Decoder
	// MaxBody is the largest body that is buffered, decoded and captured; larger ones stream
	// through untouched with an info finding. Default: the decoder's MaxBytes.
	MaxBody int64
	// Transport sends requests upstream. Default: NewTransport(TransportOptions{}).
	Transport http.RoundTripper
	// Timeout bounds a whole upstream exchange (0: none beyond the transport's own).
	Timeout time.Duration
	Clock   func() time.Time
	// AnalysisBudget bounds the body bytes queued for analysis (default 32 MiB): beyond it,
	// forwarding waits for the analyser.
	AnalysisBudget int64
	// AnalysisNice is the nice value (1 to 19) the judge's thread runs at, on Linux; 0 leaves
	// it at the process's priority. See analysis.go.
	AnalysisNice int
	// judgeGate, when set (tests), is received from by the low-priority judge before each
	// job: it stands in for a thread the scheduler does not run.
	judgeGate chan struct{}
}

// Pipeline runs exchanges. It is safe for concurrent use.
type Pipeline struct {
	cfg  Config
	stop chan struct{} // closed by Close: stops the ticker
	once sync.Once

	// The analyser (analysis.go): decoders take toDecode in any order, the judge takes ordered
	// in order. submitMu keeps the two queues in the order of submits.
	submitMu sync.Mutex
	closed   bool // guarded by submitMu
	toDecode jobQueue
	ordered  jobQueue
	slots    chan struct{} // one per queued step: bounds the queues' length
	decoders sync.WaitGroup
	stopped  chan struct{}
	budget   *byteBudget
	// pending counts the steps queued and not yet applied; judgedAt is when the last applied
	// one passed the proxy (Unix nanoseconds).
	pending  atomic.Int64
	judgedAt atomic.Int64
	// judging is held while a job is taken from ordered and applied, so the low-priority judge
	// and a normal-priority takeover (takeOver) apply jobs one at a time, in order.
	judging    sync.Mutex
	takingOver atomic.Bool
	judged     atomic.Int64 // steps applied, ever

	// hostLegs remembers which leg each upstream host serves, so bodiless exchanges with it (a
	// device polling an RI for pushed triggers) are placed on the right leg.
	hostMu   sync.Mutex
	hostLegs map[string]captures.Leg
}

// TransportOptions tune the upstream connection pool.
type TransportOptions struct {
	MaxIdlePerHost  int           // default 64
	DialTimeout     time.Duration // default 10 s
	ResponseTimeout time.Duration // time to response headers; default 60 s
	TLS             *TLSOptions
}

// NewTransport returns the upstream transport. It never reads proxy settings from the
// environment (a debugging proxy that silently chains through $HTTPS_PROXY confuses
// everyone), never adds Accept-Encoding (the request must leave as it came), and keeps a
// sized pool of keep-alive connections per upstream.
func NewTransport(o TransportOptions) *http.Transport {
	if o.MaxIdlePerHost <= 0 {
		o.MaxIdlePerHost = 64
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.ResponseTimeout <= 0 {
		o.ResponseTimeout = 60 * time.Second
	}
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          o.MaxIdlePerHost * 4,
		MaxIdleConnsPerHost:   o.MaxIdlePerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.DialTimeout,
		ResponseHeaderTimeout: o.ResponseTimeout,
		DisableCompression:    true,
		TLSClientConfig:       o.TLS.clientConfig(),
	}
}

// NewPipeline returns a pipeline; call Close to stop its background ticker.
func NewPipeline(cfg Config) *Pipeline {
	if cfg.Decoder == nil {
		cfg.Decoder = decode.NewDecoder(decode.DefaultLimits)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = int64(cfg.Decoder.Limits.MaxBytes)
	}
	if cfg.Transport == nil {
		cfg.Transport = NewTransport(TransportOptions{})
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.AnalysisBudget <= 0 {
		cfg.AnalysisBudget = defaultAnalysisBudget
	}
	p := &Pipeline{cfg: cfg, stop: make(chan struct{}), stopped: make(chan struct{}),
		budget: newByteBudget(cfg.AnalysisBudget), slots: make(chan struct{}, analysisQueue),
		toDecode: newJobQueue(), ordered: newJobQueue(), hostLegs: map[string]captures.Leg{}}
	n := runtime.GOMAXPROCS(0)
	p.decoders.Add(n)
	for range n {
		go p.decoder()
	}
	go p.judge()
	go p.tick()
	return p
}

func (p *Pipeline) tick() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastJudged := int64(-1)
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			// Steps wait for a wake-up (see submit); none waits longer than this. A judge
			// that applied nothing for a whole period with steps waiting, after the last
			// period's wake-up, is starved (see behind), however short the queue.
			if p.pending.Load() > 0 {
				if n := p.judged.Load(); n == lastJudged {
					p.behind()
				} else {
					p.kick()
				}
				lastJudged = p.judged.Load()
			} else {
				lastJudged = -1
			}
			if p.cfg.Judge == nil {
				continue
			}
			// Windows expire on the judge's clock: while steps wait in the queue, the judge has
			// only seen the traffic up to the last one it applied, and a message still queued
			// must not be reported as never having come.
			now := p.cfg.Clock()
			if p.pending.Load() > 0 {
				if at := p.judgedAt.Load(); at != 0 && at < now.UnixNano() {
					now = time.Unix(0, at)
				}
			}
			for _, l := range p.cfg.Judge.Tick(now) {
				p.cfg.Store.AddFindings(l.FlowID, l.Findings)
			}
		}
	}
}

// Hop-by-hop headers are meaningful for one connection only (RFC 9110 §7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func stripHop(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, k := range strings.Split(f, ",") {
			if k = strings.TrimSpace(k); k != "" {
				h.Del(k)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// readUpTo reads at most max+1 bytes so the caller can tell "fits" from "too large". A declared
// length sizes the buffer once (io.ReadAll's doubling costs more garbage than the body itself).
func readUpTo(r io.Reader, declared, max int64) ([]byte, bool, error) {
	if r == nil {
		return nil, false, nil
	}
	if declared >= 0 && declared <= max {
		b := make([]byte, declared)
		n, err := io.ReadFull(r, b)
		if err != nil {
			return b[:n], false, err
		}
		// A body longer than declared is the peer's error; net/http stops at the length.
		return b, false, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if int64(len(b)) > max {
		return b, true, err
	}
	// The flow keeps this slice for as long as it is stored; ReadAll's spare capacity (up to
	// half the buffer) would be kept with it.
	if cap(b)-len(b) > len(b)/8 {
		b = bytes.Clone(b)
	}
	return b, false, err
}

// RoundTrip runs one exchange: req (as received from the client, with an absolute URL naming
// the upstream) goes upstream; the returned response carries the upstream's bytes. The flow is
// stored when the caller has read the response body to the end or closed it. RoundTrip never
// returns an error: an upstream failure becomes a 502 response and a finding.
func (p *Pipeline) RoundTrip(req *http.Request, mode string) *http.Response {
	f := &captures.Flow{Mode: mode, Client: req.RemoteAddr, Method: req.Method, URL: req.URL.String(),
		Proto: req.Proto, Upstream: req.URL.Host, Request: captures.Half{Header: req.Header.Clone()}}
	x := p.begin(f)
	body, big, err := readUpTo(req.Body, req.ContentLength, p.cfg.MaxBody)
	if req.Body != nil && !big {
		req.Body.Close()
	}
	var outBody io.Reader = bytes.NewReader(body)
	outLen := int64(len(body))
	if big {
		x.request(body[:p.cfg.MaxBody], req.ContentLength, true, "", err)
		outBody, outLen = io.MultiReader(bytes.NewReader(body), req.Body), req.ContentLength
	} else {
		x.request(body, int64(len(body)), false, req.Header.Get("Content-Type"), err)
	}

	out, _ := http.NewRequestWithContext(req.Context(), req.Method, req.URL.String(), nil)
	out.Header = req.Header.Clone()
	stripHop(out.Header)
	out.Host = req.URL.Host
	if outLen != 0 || req.ContentLength != 0 {
		out.Body = io.NopCloser(outBody)
		out.ContentLength = outLen
		if outLen < 0 {
			out.ContentLength = -1
		}
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = nil // do not let net/http add its own
	}
	// The response body is read after RoundTrip returns, so the timeout's context lives until
	// the flow completes rather than until this frame ends.
	release := func() {}
	if p.cfg.Timeout > 0 {
		ctx, cancel := context.WithTimeout(out.Context(), p.cfg.Timeout)
		out, release = out.WithContext(ctx), cancel
	}
	finish := func() {
		x.done()
		release()
	}

	x.sending()
	resp, err := p.cfg.Transport.RoundTrip(out)
	if err != nil {
		return failResponse(x.fail(err), finish)
	}
	x.answered(resp.StatusCode, resp.Header.Clone())
	rbody, rbig, rerr := readUpTo(resp.Body, resp.ContentLength, p.cfg.MaxBody)
	if rerr != nil {
		resp.Body.Close()
		return failResponse(x.fail(fmt.Errorf("reading the response body: %w", rerr)), finish)
	}
	clientResp := &http.Response{
		StatusCode: resp.StatusCode, Status: resp.Status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: resp.Header.Clone(), Request: req, ContentLength: int64(len(rbody)),
	}
	stripHop(clientResp.Header)
	if rbig {
		x.response(rbody[:p.cfg.MaxBody], resp.ContentLength, true)
		clientResp.ContentLength = resp.ContentLength
		clientResp.Body = &completion{r: io.MultiReader(bytes.NewReader(rbody), resp.Body), closer: resp.Body, done: finish}
		return clientResp
	}
	resp.Body.Close()
	if resp.ContentLength >= 0 || resp.Header.Get("Content-Length") != "" {
		clientResp.Header.Set("Content-Length", strconv.Itoa(len(rbody)))
	}
	// Queued before the client sees a byte of it: whatever the client does next (an RI
	// answering its device with what the DEA said) is analysed after this.
	x.response(rbody, int64(len(rbody)), false)
	clientResp.Body = &completion{r: bytes.NewReader(rbody), done: finish}
	return clientResp
}

// exchange is the forwarding side's record of one HTTP exchange. A forwarding engine reports
// what it learns, in the order it learns it: request (once the request body is read), sending,
// answered, then response or fail, then done. Each report that completes a half queues it for
// analysis; after that the half belongs to the analyser and the engine must not touch it.
type exchange struct {
	p      *Pipeline
	f      *captures.Flow
	reqJob *job
	r      *respHalf
}

// begin starts the exchange of f, which carries what the request head said (mode, client,
// method, URL, proto, upstream, request header). It assigns the flow's ID.
func (p *Pipeline) begin(f *captures.Flow) *exchange {
	f.ID = p.cfg.Store.NextID()
	if f.Findings == nil {
		f.Findings = []decode.Finding{}
	}
	return &exchange{p: p, f: f, r: &respHalf{}}
}

// request records the request body: all of it, or its first bytes when truncated (size is then
// the declared size, -1 when unknown). A body that fits is decoded when it is not empty; ct is
// its Content-Type. readErr reports a body the client did not send completely.
func (x *exchange) request(body []byte, size int64, truncated bool, ct string, readErr error) {
	p, f := x.p, x.f
	f.Timings.Received = p.cfg.Clock()
	f.Request.Body, f.Request.Size, f.Request.Truncated = body, size, truncated
	if readErr != nil {
		f.Findings = append(f.Findings, RuleClientBody.At("", "reading the request body failed after %d bytes: %v", len(body), readErr))
	}
	if truncated {
		f.Findings = append(f.Findings, RuleBodyLimit.At("", "request body exceeds %d bytes; forwarded undecoded", p.cfg.MaxBody))
	}
	// From here on the flow belongs to the analyser; what this exchange learns later travels
	// in the jobs that follow.
	x.reqJob = &job{f: f, kind: jobRequest, held: int64(len(body))}
	if !truncated && len(body) > 0 {
		x.reqJob.body = body
		x.reqJob.hint = decode.Hint{ContentType: ct, Direction: decode.DirRequest}
	}
	p.submit(x.reqJob, false)
}

// sending records that the request is being handed to the upstream.
func (x *exchange) sending() { x.r.sentUpstream = x.p.cfg.Clock() }

// answered records the upstream's response head.
func (x *exchange) answered(status int, h http.Header) {
	x.r.firstByte = x.p.cfg.Clock()
	x.r.status, x.r.half.Header = status, h
}

// response records the upstream's response body (or its first bytes when truncated; size is
// then the declared size, -1 when unknown) and queues the response for analysis. Call it
// before the client sees a byte of the body, so that whatever the client does next (an RI
// answering its device with what the DEA said) is analysed after this.
func (x *exchange) response(body []byte, size int64, truncated bool) {
	r := x.r
	r.responded = x.p.cfg.Clock()
	r.half.Body, r.half.Size, r.half.Truncated = body, size, truncated
	rj := &job{f: x.f, kind: jobResponse, resp: r, held: int64(len(body))}
	if truncated {
		r.findings = append(r.findings, RuleBodyLimit.At("", "response body exceeds %d bytes; forwarded undecoded", x.p.cfg.MaxBody))
	} else if len(body) > 0 {
		rj.body, rj.req = body, x.reqJob
		rj.hint = decode.Hint{ContentType: r.half.Header.Get("Content-Type"), Direction: decode.DirResponse}
	}
	x.p.submit(rj, false)
}

// done records that the response has been written to the client (or that the exchange ended
// without one) and stores the flow.
func (x *exchange) done() { x.p.submit(&job{f: x.f, kind: jobDone, at: x.p.cfg.Clock()}, true) }

// respHalf is what the forwarding goroutine learned about the response, handed to the analyser.
type respHalf struct {
	status                             int
	half                               captures.Half
	sentUpstream, firstByte, responded time.Time
	findings                           []decode.Finding
	err                                string
}

type jobKind uint8

const (
	jobRequest jobKind = iota
	jobResponse
	jobDone
)

// job is one step of one flow's analysis. A decoder fills msg from the job's own bytes (it never
// touches the flow); the judge stage applies the job to the flow.
type job struct {
	f    *captures.Flow
	kind jobKind
	body []byte      // to decode; nil: nothing to decode
	hint decode.Hint // its Answers is filled from req
	req  *job        // jobResponse: the request's job, whose kind the response answers
	resp *respHalf   // jobResponse
	at   time.Time   // jobDone

	msg     *decode.Message
	ready   chan struct{} // closed once msg is decoded; nil when there was nothing to decode
	claimed atomic.Bool   // taken by a decoder or the judge, whichever came first
	held    int64         // bytes of body this job holds against the analysis budget
}

// passed is when the step's half went through the proxy.
func (j *job) passed() time.Time {
	switch j.kind {
	case jobRequest:
		return j.f.Timings.Received
	case jobResponse:
		return firstSet(j.resp.responded, j.resp.firstByte, j.resp.sentUpstream)
	}
	return j.at
}

func (p *Pipeline) apply(j *job) {
	f := j.f
	switch j.kind {
	case jobRequest:
		f.Request.Message = j.msg
		f.Leg = p.classify(f) // provisional, from the request alone; the response may refine it
		if m := f.Request.Message; m != nil && p.cfg.Judge != nil {
			// Findings go on the message they judge so the UI can point at its field.
			fs, corr := p.cfg.Judge.Judge(f, decode.DirRequest)
			m.Add(fs...)
			f.Correlation = appendUnique(f.Correlation, corr...)
		}
	case jobResponse:
		r := j.resp
		f.Timings.SentUpstream, f.Timings.FirstByte, f.Timings.Responded = r.sentUpstream, r.firstByte, r.responded
		f.StatusCode, f.Response, f.Error = r.status, r.half, r.err
		f.Response.Message = j.msg
		f.Findings = append(f.Findings, r.findings...)
		f.Leg = p.classify(f)
		if m := f.Response.Message; m != nil && p.cfg.Judge != nil {
			fs, corr := p.cfg.Judge.Judge(f, decode.DirResponse)
			m.Add(fs...)
			f.Correlation = appendUnique(f.Correlation, corr...)
		}
	case jobDone:
		f.Timings.Done = j.at
		if f.Leg == "" {
			f.Leg = p.classify(f)
		}
		// Judged: the stored flow keeps no tree, so the trees' memory goes to the next parse
		// (unless the judge holds a message for a later one).
		decode.Recycle(f.Request.Message)
		decode.Recycle(f.Response.Message)
		p.cfg.Store.Add(f)
	}
}

func appendUnique(dst []string, xs ...string) []string {
	for _, x := range xs {
		dup := false
		for _, d := range dst {
			if d == x {
				dup = true
				break
			}
		}
		if !dup && x != "" {
			dst = append(dst, x)
		}
	}
	return dst
}

// upstreamFailure is the 502 roapproxy answers when the upstream fails.
type upstreamFailure struct {
	header http.Header
	body   []byte
}

// fail records that the upstream failed (an exchange that got no usable response) and returns
// the 502 to answer the client with, which says what went wrong.
func (x *exchange) fail(err error) upstreamFailure {
	r, upstream := x.r, x.f.Upstream
	msg := fmt.Sprintf("roapproxy: upstream %s failed: %v\n", upstream, err)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		msg = fmt.Sprintf("roapproxy: upstream %s did not answer within the timeout\n", upstream)
	}
	r.err = strings.TrimSpace(msg)
	r.findings = append(r.findings, RuleUpstream.At("", "%s", strings.TrimPrefix(r.err, "roapproxy: ")))
	r.status = http.StatusBadGateway
	h := http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "Content-Length": {strconv.Itoa(len(msg))}, "X-Roapproxy-Error": {"upstream"}}
	r.half = captures.Half{Header: h.Clone(), Body: []byte(msg), Size: int64(len(msg))}
	if r.sentUpstream.IsZero() {
		r.sentUpstream = x.p.cfg.Clock()
	}
	x.p.submit(&job{f: x.f, kind: jobResponse, resp: r, held: int64(len(r.half.Body))}, false)
	return upstreamFailure{header: h, body: []byte(msg)}
}

func failResponse(u upstreamFailure, finish func()) *http.Response {
	return &http.Response{StatusCode: http.StatusBadGateway, Status: "502 Bad Gateway", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: u.header, ContentLength: int64(len(u.body)), Body: &completion{r: bytes.NewReader(u.body), done: finish}}
}

// completion calls done exactly once, when the body has been read to EOF or closed.
type completion struct {
	r      io.Reader
	closer io.Closer
	done   func()
	once   sync.Once
}

func (c *completion) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if err == io.EOF {
		c.once.Do(c.done)
	}
	return n, err
}

// WriteTo lets io.Copy hand the whole buffered body to the client in one write, instead of
// allocating a 32 KiB copy buffer per response.
func (c *completion) WriteTo(w io.Writer) (int64, error) {
	wt, ok := c.r.(io.WriterTo)
	if !ok {
		return io.Copy(w, struct{ io.Reader }{c})
	}
	n, err := wt.WriteTo(w)
	if err == nil {
		c.once.Do(c.done)
	}
	return n, err
}

func (c *completion) Close() error {
	var err error
	if c.closer != nil {
		err = c.closer.Close()
	}
	c.once.Do(c.done)
	return err
}

// classify is Classify, falling back to what earlier flows showed the upstream host to serve.
// Only the legs a host is the server of are remembered: an RI host also receives drmTriggers
// from the DEA, but its bodiless traffic is device polling.
func (p *Pipeline) classify(f *captures.Flow) captures.Leg {
	l := Classify(f)
	p.hostMu.Lock()
	defer p.hostMu.Unlock()
	switch l {
	case captures.LegDeviceRI, captures.LegRIDEA:
		if len(p.hostLegs) >= 4096 {
			clear(p.hostLegs)
		}
		p.hostLegs[f.Upstream] = l
	case captures.LegOther:
		if known, ok := p.hostLegs[f.Upstream]; ok {
			return known
		}
	}
	return l
}

// Classify names the leg of a flow from what its messages are.
func Classify(f *captures.Flow) captures.Leg {
	if mentionsOCSP(f.Request.Header) || mentionsOCSP(f.Response.Header) {
		return captures.LegOCSP
	}
	for _, m := range []*decode.Message{f.Request.Message, f.Response.Message} {
		if m == nil {
			continue
		}
		switch m.Family {
		case decode.FamilySCE:
			if m.Kind == "drmTrigger" {
				return captures.LegDEARI
			}
			return captures.LegRIDEA
		case decode.FamilyROAP, decode.FamilyTrigger, decode.FamilyToken:
			return captures.LegDeviceRI
		}
	}
	return captures.LegOther
}

// mentionsOCSP reports whether a Content-Type of h contains "ocsp" in any case. It runs three
// times per flow, so it neither canonicalizes the name (heads are stored canonical) nor lowers a
// copy of the value.
func mentionsOCSP(h http.Header) bool {
	for _, v := range h["Content-Type"] {
		for i := 0; i+4 <= len(v); i++ {
			if (v[i]|0x20) == 'o' && (v[i+1]|0x20) == 'c' && (v[i+2]|0x20) == 's' && (v[i+3]|0x20) == 'p' {
				return true
			}
		}
	}
	return false
}

// singleJoin joins two URL paths with exactly one slash between them.
func singleJoin(a, b string) string {
	switch {
	case strings.HasSuffix(a, "/") && strings.HasPrefix(b, "/"):
		return a + b[1:]
	case !strings.HasSuffix(a, "/") && !strings.HasPrefix(b, "/") && b != "":
		return a + "/" + b
	}
	return a + b
}
