package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Paths measured.
const (
	pathDirect   = "direct"
	pathRelay    = "TCP relay (floor)"
	pathNull     = "httputil proxy (floor)"
	pathNoVerify = "proxy --no-verify"
	pathVerify   = "proxy, verifying"
	pathCompare  = "proxy, verifying, --compare build"
)

// Config is one measurement run.
type Config struct {
	Bin string // roapproxy binary; "" builds ./cmd/roapproxy
	// Compare, when set, is a second roapproxy binary measured verifying as one more path in
	// the same rounds, so that two builds are compared minutes, not runs, apart.
	Compare     string
	Concurrency []int         // closed-loop workers per cell
	Duration    time.Duration // per cell, when Requests is 0
	Requests    int           // per cell; > 0 replaces Duration
	Warmup      time.Duration // per cell before measuring (Requests mode: Requests/10 requests)
	Variants    int           // distinct signed exchanges
	Exchange    string        // ShapeTypical (default) or ShapeFull
	Bits        int           // RSA key size of the test PKI
	// Rounds measures every closed-loop cell this many times, the paths in a rotating order, and
	// reports medians: on a shared machine one cell can land in a slow minute that the next
	// path's cell does not, and a single run then compares unlike moments.
	Rounds     int
	Flows      int // RSS check: requests through the verifying proxy at concurrency 32; 0 skips
	FlowsConc  int
	Probe      bool // check that the verifying proxy flags a corrupted signature
	NullProxy  bool // also measure a plain httputil reverse proxy process
	Relay      bool // also measure a process that relays TCP without parsing it
	UITab      bool
	UIDuration time.Duration
	UIRate     float64
	Chromium   string
	// InProcessUpstream runs the simulated RI inside the tool; by default it is its own process.
	InProcessUpstream bool
	ProfileDir        string    // when set, each roapproxy run writes a CPU profile here
	Log               io.Writer // progress; nil discards
}

// Cell is one measured combination of path and load.
type Cell struct {
	Path        string  `json:"path"`
	Concurrency int     `json:"concurrency,omitempty"`
	TargetRate  float64 `json:"targetRate,omitempty"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"firstError,omitempty"`
	Shed        int     `json:"shed,omitempty"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	P50us       float64 `json:"p50Us"`
	P99us       float64 `json:"p99Us"`
	Proxied     bool    `json:"proxied"`
	CPUus       float64 `json:"proxyCpuUsPerRequest,omitempty"`
	CPUTicks    uint64  `json:"proxyCpuTicks,omitempty"`
	RSSMB       float64 `json:"proxyRssMB,omitempty"`
	PeakRSSMB   float64 `json:"proxyPeakRssMB,omitempty"`
	WriteBPerRq float64 `json:"proxyWriteBytesPerRequest,omitempty"`
	// IOCallsPerRq counts the proxy's read and write system calls per request: where a proxy's
	// CPU goes on a machine whose system calls are dear.
	IOCallsPerRq float64 `json:"proxyIOCallsPerRequest,omitempty"`
	// Round numbers a cell of a run with several rounds (from 1); on a merged cell, Rounds is how
	// many were merged and the ranges are their lowest and highest values.
	Round    int        `json:"round,omitempty"`
	Rounds   int        `json:"rounds,omitempty"`
	RPSRange [2]float64 `json:"rpsRange,omitzero"`
	CPURange [2]float64 `json:"proxyCpuUsRange,omitzero"`
}

// Probe says whether the verifying proxy really verified.
type Probe struct {
	Active         bool     `json:"active"`
	CorruptFlagged []string `json:"corruptFindings"`
	// CorruptRespFlagged are the findings on an exchange whose response signature is corrupted.
	CorruptRespFlagged []string `json:"corruptResponseFindings"`
	ValidFindings      []string `json:"validFindings"`
	Note               string   `json:"note"`
}

// UIResult is the --ui-tab comparison.
type UIResult struct {
	Skipped    string  `json:"skipped,omitempty"`
	Rate       float64 `json:"rate"`
	WithoutTab *Cell   `json:"withoutTab,omitempty"`
	WithTab    *Cell   `json:"withTab,omitempty"`
	// Ratios with tab ÷ without.
	RateRatio       float64 `json:"rateRatio,omitempty"`
	P50Ratio        float64 `json:"p50Ratio,omitempty"`
	P99Ratio        float64 `json:"p99Ratio,omitempty"`
	CPURatio        float64 `json:"cpuRatio,omitempty"`
	UIBytesPerEvent float64 `json:"uiBytesPerEvent,omitempty"`
	// BrowserCores is the CPU the Chromium process group used during the tab run, in cores.
	BrowserCores float64 `json:"browserCores,omitempty"`
	// WithBusyCore is the control: no tab, one core taken by a busy loop (SpinnerCores of it).
	WithBusyCore *Cell   `json:"withBusyCore,omitempty"`
	SpinnerCores float64 `json:"spinnerCores,omitempty"`
	// Tab ÷ control.
	P50VsBusy float64 `json:"p50VsBusyCore,omitempty"`
	CPUVsBusy float64 `json:"cpuVsBusyCore,omitempty"`
}

// Target is one goal checked against what was measured.
type Target struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Unit string  `json:"unit"`
	Met  bool    `json:"met"`
}

// Report is the result of a run.
type Report struct {
	Started       time.Time `json:"started"`
	Commit        string    `json:"commit,omitempty"` // of the measured tree; "+dirty" when it had local changes
	LoadBefore    string    `json:"loadAvgBefore,omitempty"`
	LoadAfter     string    `json:"loadAvgAfter,omitempty"`
	CPUs          int       `json:"cpus"`
	CPUModel      string    `json:"cpuModel"`
	GoVersion     string    `json:"goVersion"`
	ClockTicks    int       `json:"clockTicks"`
	ClockGuessed  bool      `json:"clockTicksGuessed,omitempty"`
	Exchange      string    `json:"exchange"`
	RequestBytes  int       `json:"requestBytes"`
	ResponseBytes int       `json:"responseBytes"`
	Variants      int       `json:"variants"`
	// UpstreamProcess says the simulated RI ran as its own process (the default).
	UpstreamProcess bool   `json:"upstreamProcess"`
	Bits            int    `json:"rsaBits"`
	Probe           *Probe `json:"verification,omitempty"`
	// Cells holds one cell per path and load: with several rounds, the median of each figure.
	Cells []Cell `json:"cells"`
	// Rounds and RoundCells: every round's own cells, which the ratios pair up (see paired).
	Rounds     int       `json:"rounds"`
	RoundCells []Cell    `json:"roundCells,omitempty"`
	Flows      *Cell     `json:"flows,omitempty"`
	UI         *UIResult `json:"ui,omitempty"`
	// Ratios against the direct baseline at concurrency 1 of the same run.
	ThroughputRatioC1 float64 `json:"throughputRatioC1,omitempty"`
	P50RatioC1        float64 `json:"p50RatioC1,omitempty"`
	NoVerifyRatioC1   float64 `json:"noVerifyThroughputRatioC1,omitempty"`
	NullRatioC1       float64 `json:"nullProxyThroughputRatioC1,omitempty"`
	RelayRatioC1      float64 `json:"relayThroughputRatioC1,omitempty"`
	// CPU per request at the highest concurrency, against the floors of the same run.
	FloorConc int `json:"floorConcurrency,omitempty"`
	// Against the --compare build: verifying CPU per request at FloorConc and throughput at
	// concurrency 1, this build ÷ that one, with each round's own ratio.
	Compare          string    `json:"compare,omitempty"`
	CompareCPU       float64   `json:"verifyCPUOverCompare,omitempty"`
	CompareCPURounds []float64 `json:"verifyCPUOverCompareRounds,omitempty"`
	CompareRPSC1     float64   `json:"throughputOverCompareC1,omitempty"`
	VerifyCPURelay   float64   `json:"verifyCPUOverRelay,omitempty"`
	NoVerifyCPURelay float64   `json:"noVerifyCPUOverRelay,omitempty"`
	NullCPURelay     float64   `json:"nullCPUOverRelay,omitempty"`
	VerifyCPUNull    float64   `json:"verifyCPUOverNull,omitempty"`
	Targets          []Target  `json:"targets"`
	Elapsed          float64   `json:"elapsedSeconds"`
}

func (c *Config) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

// Measure runs everything cfg asks for. Errors of individual requests are counted in the
// cells; an error return means the run itself could not be carried out.
func Measure(ctx context.Context, cfg Config) (*Report, error) {
	begin := time.Now()
	if cfg.Variants == 0 {
		cfg.Variants = 256
	}
	if cfg.FlowsConc == 0 {
		cfg.FlowsConc = 32
	}
	if len(cfg.Concurrency) == 0 {
		return nil, errors.New("no concurrency levels")
	}
	tmp, err := os.MkdirTemp("", "roapload-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	rep := &Report{Started: begin.UTC(), CPUs: runtime.NumCPU(), CPUModel: cpuModel(), GoVersion: runtime.Version(),
		Variants: cfg.Variants, Bits: cfg.Bits}
	if rep.Bits == 0 {
		rep.Bits = 2048
	}
	if cfg.Bin == "" {
		rep.Commit = treeCommit(ctx)
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("--profile-dir: %w", err)
		}
	}
	rep.LoadBefore = loadAvg()
	ticks, ok := clockTicks()
	rep.ClockTicks, rep.ClockGuessed = ticks, !ok

	cfg.logf("building the test PKI and %d signed exchanges (%d-bit RSA)…", cfg.Variants, rep.Bits)
	rep.Exchange = cfg.Exchange
	if rep.Exchange == "" {
		rep.Exchange = ShapeTypical
	}
	pl, err := newPayload(cfg.Variants, rep.Bits, rep.Exchange)
	if err != nil {
		return nil, err
	}
	rep.RequestBytes, rep.ResponseBytes = len(pl.exchanges[0].req), len(pl.exchanges[0].resp)
	trust := filepath.Join(tmp, "root.pem")
	if err := os.WriteFile(trust, pl.rootPEM, 0o600); err != nil {
		return nil, err
	}
	var up *upstream
	if cfg.InProcessUpstream {
		up, err = startUpstream(pl)
	} else {
		up, err = startUpstreamProcess(pl, tmp)
	}
	if err != nil {
		return nil, err
	}
	rep.UpstreamProcess = !cfg.InProcessUpstream
	defer up.Close()

	bin := cfg.Bin
	if bin == "" {
		cfg.logf("building roapproxy…")
		if bin, err = buildProxy(ctx, tmp); err != nil {
			return nil, err
		}
	}
	pc := func(verify, ui bool) proxyConfig {
		return proxyConfig{Bin: bin, Upstream: up.URL, Verify: verify, TrustPEM: trust, UI: ui, WorkDir: filepath.Join(tmp, "config")}
	}
	measurer := cellMeasurer{cfg: &cfg, ticks: ticks}

	if cfg.Probe {
		pr, err := probe(ctx, pc(true, true), pl)
		if err != nil {
			return nil, fmt.Errorf("verification probe: %w", err)
		}
		rep.Probe = pr
		cfg.logf("verification probe: %s", pr.Note)
	}

	maxConc := slices.Max(cfg.Concurrency)
	// Every path is set up first, so that the rounds can take turns between them.
	type target struct {
		name string
		c    *client
		proc *proxyProc
	}
	direct, err := connect(ctx, up.URL, pl, maxConc)
	if err != nil {
		return nil, err
	}
	targets := []target{{name: pathDirect, c: direct}}
	defer func() {
		for _, t := range targets {
			t.c.close()
			if t.proc != nil {
				t.proc.kill() // after a clean stop, this only waits
			}
		}
	}()
	type proxied struct {
		name string
		cfg  proxyConfig
	}
	var runs []proxied
	if cfg.Relay {
		relay := pc(false, false)
		relay.Relay = true
		runs = append(runs, proxied{pathRelay, relay})
	}
	if cfg.NullProxy {
		null := pc(false, false)
		null.Null = true
		runs = append(runs, proxied{pathNull, null})
	}
	runs = append(runs, proxied{pathNoVerify, pc(false, false)}, proxied{pathVerify, pc(true, false)})
	if cfg.Compare != "" {
		other := pc(true, false)
		other.Bin = cfg.Compare
		runs = append(runs, proxied{pathCompare, other})
		rep.Compare = cfg.Compare
	}
	for _, run := range runs {
		name := run.name
		if cfg.ProfileDir != "" && !run.cfg.Null && !run.cfg.Relay {
			slug := strings.NewReplacer(" ", "-", "`", "", ",", "").Replace(name)
			run.cfg.Extra = append(run.cfg.Extra, "--cpuprofile", filepath.Join(cfg.ProfileDir, slug+".pprof"),
				"--memprofile", filepath.Join(cfg.ProfileDir, slug+".mem.pprof"))
		}
		proc, err := startProxy(run.cfg)
		if err != nil {
			return nil, err
		}
		c, err := connect(ctx, proc.Reverse, pl, maxConc)
		if err != nil {
			proc.kill()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		targets = append(targets, target{name: name, c: c, proc: proc})
	}
	rep.Rounds = max(cfg.Rounds, 1)
	var raw []Cell
	for r := range rep.Rounds {
		if rep.Rounds > 1 {
			cfg.logf("round %d of %d", r+1, rep.Rounds)
		}
		// Rotating the order gives each path each position in turn, so that none is always the
		// first measured or the last.
		for i := range targets {
			t := targets[(i+r)%len(targets)]
			for _, conc := range cfg.Concurrency {
				cell, err := measurer.closed(ctx, t.name, t.c, t.proc, conc)
				if err != nil {
					return nil, err
				}
				cell.Round = r + 1
				raw = append(raw, cell)
			}
		}
	}
	for _, t := range targets {
		if t.proc != nil {
			// Stopped cleanly, so that profiles are written.
			if err := t.proc.stop(); err != nil {
				return nil, err
			}
		}
	}
	rep.Cells = mergeRounds(raw)
	if rep.Rounds > 1 {
		rep.RoundCells = raw
	}

	if cfg.Flows > 0 {
		cfg.logf("RSS check: %d requests through the verifying proxy at concurrency %d…", cfg.Flows, cfg.FlowsConc)
		proc, err := startProxy(pc(true, false))
		if err != nil {
			return nil, err
		}
		c, err := connect(ctx, proc.Reverse, pl, cfg.FlowsConc)
		if err != nil {
			proc.kill()
			return nil, err
		}
		m := measurer
		m.noWarmup = true
		cell, err := m.count(ctx, pathVerify+", RSS check", c, proc, cfg.FlowsConc, cfg.Flows)
		c.close()
		if err != nil {
			proc.kill()
			return nil, err
		}
		if err := proc.stop(); err != nil {
			return nil, err
		}
		rep.Flows = &cell
	}

	if cfg.UITab {
		upc := pc(true, true)
		if cfg.ProfileDir != "" {
			upc.Extra = append(upc.Extra, "--cpuprofile", filepath.Join(cfg.ProfileDir, "ui.pprof"))
		}
		ui, err := measureUI(ctx, &cfg, measurer, upc, pl)
		if err != nil {
			return nil, err
		}
		rep.UI = ui
	}
	rep.summarize()
	rep.LoadAfter = loadAvg()
	rep.Elapsed = time.Since(begin).Seconds()
	return rep, nil
}

// cellMeasurer runs cells and reads the proxy's counters around them.
type cellMeasurer struct {
	cfg      *Config
	ticks    int
	noWarmup bool
}

func (m cellMeasurer) closed(ctx context.Context, path string, c *client, proc *proxyProc, conc int) (Cell, error) {
	return m.count(ctx, path, c, proc, conc, m.cfg.Requests)
}

// count measures one closed-loop cell of n requests (n == 0: the configured duration).
func (m cellMeasurer) count(ctx context.Context, path string, c *client, proc *proxyProc, conc, n int) (Cell, error) {
	if !m.noWarmup {
		if n > 0 {
			closedLoop(ctx, c, conc, max(n/10, conc), 0)
		} else if m.cfg.Warmup > 0 {
			closedLoop(ctx, c, conc, 0, m.cfg.Warmup)
		}
	}
	return m.sampled(ctx, path, proc, func() *runResult { return closedLoop(ctx, c, conc, n, m.cfg.Duration) },
		Cell{Path: path, Concurrency: conc})
}

// sampled runs load between two samples of the proxy's counters.
func (m cellMeasurer) sampled(ctx context.Context, path string, proc *proxyProc, load func() *runResult, cell Cell) (Cell, error) {
	var before procSample
	var err error
	if proc != nil {
		if before, err = sampleProc(proc.Pid()); err != nil {
			return cell, fmt.Errorf("%s: reading /proc: %w", path, err)
		}
	}
	r := load()
	if err := ctx.Err(); err != nil {
		return cell, err
	}
	cell.Requests, cell.Errors, cell.FirstError, cell.Shed = r.Requests, r.Errors, r.FirstErr, r.Shed
	cell.Seconds = r.Elapsed.Seconds()
	cell.RPS = float64(r.Requests) / r.Elapsed.Seconds()
	p50, p99 := latencySummary(r.Latencies)
	cell.P50us, cell.P99us = us(p50), us(p99)
	if proc != nil {
		after, err := sampleProc(proc.Pid())
		if err != nil {
			return cell, fmt.Errorf("%s: reading /proc: %w", path, err)
		}
		cell.Proxied = true
		cell.CPUTicks = after.CPUTicks - before.CPUTicks
		if r.Requests > 0 {
			cell.CPUus = float64(cell.CPUTicks) / float64(m.ticks) * 1e6 / float64(r.Requests)
			if after.IOCalls > 0 {
				cell.IOCallsPerRq = float64(after.IOCalls-before.IOCalls) / float64(r.Requests)
			}
			if after.WriteB > 0 {
				cell.WriteBPerRq = float64(after.WriteB-before.WriteB) / float64(r.Requests)
			}
		}
		cell.RSSMB = float64(after.RSSKB) * 1024 / 1e6
		cell.PeakRSSMB = float64(after.HWMKB) * 1024 / 1e6
	}
	m.cfg.logf("  %-28s %-7s %7d req  %8.0f req/s  p50 %s  p99 %s  cpu/req %s  rss %s  errors %d",
		path, loadLabel(cell), cell.Requests, cell.RPS, fmtUs(cell.P50us), fmtUs(cell.P99us), cpuStr(cell), rssStr(cell), cell.Errors)
	return cell, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// probe starts a verifying proxy with the UI, sends a valid exchange, one with a corrupted
// request signature and one with a corrupted response signature, and reads the findings back
// from the UI's API: a verifying proxy must check the valid one without a ROAP-SIG finding and
// flag both bad signatures. With the typical shape, the response has no chain, so the last
// check also shows that the proxy verifies with the RI certificate it learnt from the prelude.
func probe(ctx context.Context, pcfg proxyConfig, pl *payload) (*Probe, error) {
	proc, err := startProxy(pcfg)
	if err != nil {
		return nil, err
	}
	defer proc.kill()
	c, err := connect(ctx, proc.Reverse, pl, 1)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var buf bytes.Buffer
	sends := []struct {
		what string
		x    exchange
	}{{"valid exchange", pl.exchanges[0]}, {"corrupted request", pl.corruptReq}, {"corrupted response", pl.corruptResp}}
	for _, s := range sends {
		if err := c.do(ctx, s.x, &buf); err != nil {
			return nil, fmt.Errorf("%s: %w", s.what, err)
		}
	}
	want := len(sends)
	if pl.prelude != nil {
		want++
	}
	// The proxy stores a flow once the response body has been handed over, which can be a
	// moment after the client has all its bytes: poll briefly.
	var flows []probeFlow
	for deadline := time.Now().Add(5 * time.Second); ; {
		if flows, err = listFlows(ctx, proc.UI); err != nil {
			return nil, err
		}
		if len(flows) >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(flows) != want {
		return nil, fmt.Errorf("GET /api/flows: %d flows, want %d", len(flows), want)
	}
	slices.SortFunc(flows, func(a, b probeFlow) int { return cmp.Compare(a.ID, b.ID) })
	flows = flows[want-len(sends):]
	pr := &Probe{ValidFindings: nonNil(flows[0].Findings), CorruptFlagged: nonNil(flows[1].Findings),
		CorruptRespFlagged: nonNil(flows[2].Findings)}
	validClean := !slices.ContainsFunc(pr.ValidFindings, func(id string) bool { return strings.HasPrefix(id, "ROAP-SIG") })
	reqFlagged, respFlagged := slices.Contains(pr.CorruptFlagged, "ROAP-SIG"), slices.Contains(pr.CorruptRespFlagged, "ROAP-SIG")
	pr.Active = validClean && reqFlagged && respFlagged
	switch {
	case pr.Active:
		pr.Note = "active: the valid exchange's signatures verify, and a corrupted roRequest and a corrupted roResponse signature are each flagged ROAP-SIG"
	case !validClean:
		pr.Note = "NOT complete: the valid exchange has a ROAP-SIG finding, so its signatures were not all checked"
	default:
		pr.Note = fmt.Sprintf("NOT active: corrupted signatures flagged — request %v, response %v; the verifying path does not verify everything it is credited with", reqFlagged, respFlagged)
	}
	if err := proc.stop(); err != nil {
		return nil, err
	}
	return pr, nil
}

func listFlows(ctx context.Context, ui string) ([]probeFlow, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(ui, "/")+"/api/flows", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var page struct {
		Flows []probeFlow `json:"flows"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/flows: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, fmt.Errorf("GET /api/flows: %w", err)
	}
	return page.Flows, nil
}

// probeFlow is the part of a /api/flows summary the probe reads.
type probeFlow struct {
	ID       uint64   `json:"id"`
	Findings []string `json:"findings"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// treeCommit names the commit the measured roapproxy is built from, with "+dirty" when the
// working tree differs from it (results of a dirty tree are not reproducible from the hash).
func treeCommit(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=normal").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += "+dirty"
	}
	return c
}

// loadAvg is the 1, 5 and 15 minute load average: on a shared machine it says how much else ran.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// floorRatios sets the CPU ratios against the floors at the highest concurrency every proxied
// path was measured at, where per-request cost is best amortized.
func (r *Report) floorRatios(find func(string, int) *Cell) {
	top := 0
	for _, c := range r.Cells {
		top = max(top, c.Concurrency)
	}
	if find(pathVerify, top) == nil {
		return
	}
	r.FloorConc = top
	cpu := func(c Cell) float64 { return c.CPUus }
	r.VerifyCPURelay = r.paired(pathVerify, top, pathRelay, top, cpu)
	r.NoVerifyCPURelay = r.paired(pathNoVerify, top, pathRelay, top, cpu)
	r.NullCPURelay = r.paired(pathNull, top, pathRelay, top, cpu)
	r.VerifyCPUNull = r.paired(pathVerify, top, pathNull, top, cpu)
	if r.Compare != "" {
		r.CompareCPURounds = r.pairedRounds(pathVerify, top, pathCompare, top, cpu)
		r.CompareCPU = median(r.CompareCPURounds)
	}
}

// summarize computes the ratios and checks the targets.
func (r *Report) summarize() {
	find := func(path string, conc int) *Cell {
		for i := range r.Cells {
			if r.Cells[i].Path == path && r.Cells[i].Concurrency == conc {
				return &r.Cells[i]
			}
		}
		return nil
	}
	rps := func(c Cell) float64 { return c.RPS }
	if find(pathDirect, 1) != nil && find(pathVerify, 1) != nil {
		r.ThroughputRatioC1 = r.paired(pathVerify, 1, pathDirect, 1, rps)
		r.P50RatioC1 = r.paired(pathVerify, 1, pathDirect, 1, func(c Cell) float64 { return c.P50us })
		r.Targets = append(r.Targets, Target{Name: "throughput at concurrency 1, verifying ÷ direct", Want: "≥ 0.5",
			Got: r.ThroughputRatioC1, Unit: "×", Met: r.ThroughputRatioC1 >= 0.5})
	}
	r.NoVerifyRatioC1 = r.paired(pathNoVerify, 1, pathDirect, 1, rps)
	r.NullRatioC1 = r.paired(pathNull, 1, pathDirect, 1, rps)
	r.RelayRatioC1 = r.paired(pathRelay, 1, pathDirect, 1, rps)
	if r.Compare != "" {
		r.CompareRPSC1 = r.paired(pathVerify, 1, pathCompare, 1, rps)
	}
	r.floorRatios(find)
	// CPU per request: the best-amortized cell (highest concurrency) is the proxy's steady
	// cost; the concurrency-1 cell also carries idle wake-ups per request.
	var cpuCell *Cell
	for i := range r.Cells {
		c := &r.Cells[i]
		if c.Path == pathVerify && (cpuCell == nil || c.Concurrency > cpuCell.Concurrency) {
			cpuCell = c
		}
	}
	if cpuCell != nil {
		r.Targets = append(r.Targets, Target{Name: fmt.Sprintf("proxy CPU per request, verifying, concurrency %d", cpuCell.Concurrency),
			Want: "≤ 150 µs", Got: cpuCell.CPUus, Unit: "µs", Met: cpuCell.CPUus <= 150})
	}
	if r.Flows != nil {
		r.Targets = append(r.Targets, Target{Name: fmt.Sprintf("proxy RSS after %d flows (verifying)", r.Flows.Requests),
			Want: "< 100 MB", Got: r.Flows.RSSMB, Unit: "MB", Met: r.Flows.RSSMB < 100 && r.Flows.Errors == 0})
	}
	if u := r.UI; u != nil && u.Skipped == "" && u.WithTab != nil && u.WithoutTab != nil && u.WithBusyCore != nil {
		// "Without the proxy slowing": the rate holds, and latency with the tab is no worse than
		// with a busy loop in the browser's place (10 % absorbs a shared machine's noise; a tab
		// that slowed the proxy would show far more). A flow summary is a few hundred bytes of
		// JSON: a tab that got less per flow never opened the stream, and then nothing was measured.
		streamed := u.UIBytesPerEvent >= 100
		met := streamed && u.WithTab.RPS >= 0.98*u.Rate && u.WithTab.Errors == 0 && u.WithTab.Shed == 0 && u.P50VsBusy <= 1.10
		r.Targets = append(r.Targets, Target{Name: fmt.Sprintf("UI: %.0f events/s into one tab, p50 with tab ÷ with a busy core instead", u.Rate),
			Want: "rate held, ≤ 1.10, stream delivered", Got: u.P50VsBusy, Unit: "×", Met: met})
	}
	errs := 0
	all := append([]Cell(nil), r.Cells...)
	if r.Flows != nil {
		all = append(all, *r.Flows)
	}
	if r.UI != nil {
		for _, c := range []*Cell{r.UI.WithoutTab, r.UI.WithBusyCore, r.UI.WithTab} {
			if c != nil {
				all = append(all, *c)
			}
		}
	}
	for _, c := range all {
		errs += c.Errors
	}
	r.Targets = append(r.Targets, Target{Name: "request errors in all cells", Want: "0", Got: float64(errs), Met: errs == 0})
}
