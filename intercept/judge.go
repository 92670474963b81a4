package intercept

import (
	"strconv"
	"sync"
	"time"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/verify"
)

// VerifyJudge adapts a verify.Verifier to the pipeline: each decoded half is observed once, in
// the order it passed, and the tracker's late findings (expired windows) are routed back to the
// flow that raised the expectation.
type VerifyJudge struct {
	v *verify.Verifier

	mu    sync.Mutex
	flows map[string]uint64 // correlation key → latest flow carrying it
	order []string          // keys in insertion order, for bounded eviction
	max   int
}

var _ Judge = (*VerifyJudge)(nil)

// NewVerifyJudge returns a judge over v.
func NewVerifyJudge(v *verify.Verifier) *VerifyJudge {
	return &VerifyJudge{v: v, flows: map[string]uint64{}, max: 65536}
}

// Verifier returns the underlying verifier.
func (j *VerifyJudge) Verifier() *verify.Verifier { return j.v }

func verifyLeg(l captures.Leg) verify.Leg {
	switch l {
	case captures.LegDeviceRI:
		return verify.LegDeviceRI
	case captures.LegRIDEA, captures.LegDEARI:
		return verify.LegRIDEA
	}
	return verify.LegUnknown
}

// Judge observes the request or response message of f.
func (j *VerifyJudge) Judge(f *captures.Flow, dir decode.Direction) ([]decode.Finding, []string) {
	m := f.Request.Message
	at := f.Timings.Received
	if dir == decode.DirResponse {
		m = f.Response.Message
		if !f.Timings.FirstByte.IsZero() {
			at = f.Timings.FirstByte
		}
	}
	if m == nil {
		return nil, nil
	}
	res := j.v.Track(verify.Observation{
		Message: m, Time: at, Leg: verifyLeg(f.Leg), Direction: dir,
		Exchange: strconv.FormatUint(f.ID, 10), Client: f.Client, Server: f.Upstream, URL: f.URL,
	})
	keys := res.Joins
	if res.Correlation != "" {
		keys = append([]string{res.Correlation}, keys...)
	}
	j.remember(keys, f.ID)
	return res.Findings, keys
}

func (j *VerifyJudge) remember(keys []string, id uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, k := range keys {
		if _, ok := j.flows[k]; !ok {
			j.order = append(j.order, k)
		}
		j.flows[k] = id
	}
	for len(j.order) > j.max {
		delete(j.flows, j.order[0])
		j.order = j.order[1:]
	}
}

// Tick reports the expectations whose window passed, as late findings on the flow that raised
// them.
func (j *VerifyJudge) Tick(now time.Time) []Late {
	var out []Late
	for _, p := range j.v.Tracker().Tick(now) {
		j.mu.Lock()
		id, ok := j.flows[p.Key]
		j.mu.Unlock()
		if ok {
			out = append(out, Late{FlowID: id, Findings: []decode.Finding{p.Finding}})
		}
	}
	return out
}
