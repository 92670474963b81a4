package intercept

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
)

// Replay analyses recorded flows again as if they were passing the proxy now, and stores them in
// cfg.Store: every request and response is decoded and judged with cfg.Judge in the order it
// passed (a request when it was received, a response when it was read), so the cross-message and
// cross-leg rules see what the live proxy saw. The findings the proxy made itself (PROXY-*) are
// kept; the messages' findings are computed afresh, with today's trust and keys. When the
// recording ends, whatever was still expected is reported as missing, as `inspect` does at the
// end of a conversation. Replay returns the number of flows stored.
func Replay(flows []*captures.Flow, cfg Config) int {
	if cfg.Decoder == nil {
		cfg.Decoder = decode.NewDecoder(decode.DefaultLimits)
	}
	p := &Pipeline{cfg: cfg, hostLegs: map[string]captures.Leg{}}

	type step struct {
		at   time.Time
		kind jobKind
		j    *job
	}
	var steps []step
	var last time.Time
	for _, r := range flows {
		if r == nil {
			continue
		}
		f := &captures.Flow{ID: r.ID, Mode: r.Mode, Client: r.Client, Method: r.Method, URL: r.URL, Proto: r.Proto,
			Upstream: r.Upstream, Rules: r.Rules, Findings: []decode.Finding{},
			Request: captures.Half{Header: r.Request.Header, Body: r.Request.Body, Size: r.Request.Size, Truncated: r.Request.Truncated}}
		f.Timings.Received = r.Timings.Received
		for _, x := range r.Findings {
			if strings.HasPrefix(x.Rule, "PROXY-") {
				f.Findings = append(f.Findings, x)
			}
		}
		req := &job{f: f, kind: jobRequest}
		if !r.Request.Truncated && len(r.Request.Body) > 0 {
			req.body = r.Request.Body
			req.hint = decode.Hint{ContentType: r.Request.Header.Get("Content-Type"), Direction: decode.DirRequest}
		}
		rh := &respHalf{status: r.StatusCode, err: r.Error, sentUpstream: r.Timings.SentUpstream, firstByte: r.Timings.FirstByte,
			responded: r.Timings.Responded,
			half:      captures.Half{Header: r.Response.Header, Body: r.Response.Body, Size: r.Response.Size, Truncated: r.Response.Truncated}}
		resp := &job{f: f, kind: jobResponse, resp: rh}
		// The proxy's own 502 body is not the upstream's message.
		if r.Error == "" && !r.Response.Truncated && len(r.Response.Body) > 0 {
			resp.body, resp.req = r.Response.Body, req
			resp.hint = decode.Hint{ContentType: r.Response.Header.Get("Content-Type"), Direction: decode.DirResponse}
		}
		respAt := firstSet(r.Timings.Responded, r.Timings.FirstByte, r.Timings.Received)
		doneAt := firstSet(r.Timings.Done, respAt)
		steps = append(steps, step{r.Timings.Received, jobRequest, req}, step{respAt, jobResponse, resp},
			step{doneAt, jobDone, &job{f: f, kind: jobDone, at: r.Timings.Done}})
		if doneAt.After(last) {
			last = doneAt
		}
	}
	// Wire order; at equal times a flow's request before its response before its end, and
	// lower flow IDs first.
	slices.SortStableFunc(steps, func(a, b step) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		if a.kind != b.kind {
			return int(a.kind) - int(b.kind)
		}
		return cmp.Compare(a.j.f.ID, b.j.f.ID)
	})
	n := 0
	for _, s := range steps {
		p.decode(s.j)
		p.apply(s.j)
		if s.kind == jobDone {
			n++
		}
	}
	if cfg.Judge != nil && !last.IsZero() {
		for _, l := range cfg.Judge.Tick(last.Add(365 * 24 * time.Hour)) {
			cfg.Store.AddFindings(l.FlowID, l.Findings)
		}
	}
	return n
}

func firstSet(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}
