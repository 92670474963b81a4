package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The null proxy re-executes the running binary, which under go test is the test binary.
func TestMain(m *testing.M) {
	if os.Getenv(nullProxyEnv) != "" {
		os.Exit(runNullProxy())
	}
	if os.Getenv(relayEnv) != "" {
		os.Exit(runRelay())
	}
	if os.Getenv(upstreamEnv) != "" {
		os.Exit(runUpstreamProcess())
	}
	if os.Getenv(spinnerEnv) != "" {
		os.Exit(runSpinner())
	}
	os.Exit(m.Run())
}

func TestPercentileNearestRank(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	var hundred []time.Duration
	for i := 100; i >= 1; i-- { // reversed: latencySummary must sort
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	p50, p99 := latencySummary(hundred)
	if p50 != 50*time.Millisecond || p99 != 99*time.Millisecond {
		t.Errorf("1..100 ms: p50 %v p99 %v, want 50ms 99ms", p50, p99)
	}
	cases := []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 50, 7 * time.Millisecond},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2), 50, 1 * time.Millisecond},
		{ms(1, 2), 51, 2 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond}, // nearest rank: an observed value
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 100, 10 * time.Millisecond},
		{ms(1, 2, 3), 0, 1 * time.Millisecond},
	}
	for _, c := range cases {
		if got := percentile(c.in, c.p); got != c.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", c.in, c.p, got, c.want)
		}
	}
	if ratio(3, 0) != 0 || ratio(3, 2) != 1.5 {
		t.Errorf("ratio: got %v, %v", ratio(3, 0), ratio(3, 2))
	}
}

func TestParseStatCPU(t *testing.T) {
	// The command name may hold spaces and parentheses; fields count from the last ')'.
	stat := "4242 (roap (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 3 4 20 0 9 0 1234 10000 500 18446744073709551615\n"
	got, err := parseStatCPU(stat)
	if err != nil || got != 325 {
		t.Fatalf("parseStatCPU = %d, %v; want 325", got, err)
	}
	if g, ticks, err := parseStatGroup(stat); err != nil || g != 4242 || ticks != 325 {
		t.Errorf("parseStatGroup = %d, %d, %v; want 4242, 325", g, ticks, err)
	}
	for _, bad := range []string{"", "4242 roapproxy S 1 2", "4242 (x) S 1 2 3", "4242 (x) S 1 4242 4242 0 -1 4194560 900 0 0 0 2x5 75 3"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q): no error", bad)
		}
	}
}

func TestParseStatCPUTracksRealUsage(t *testing.T) {
	read := func() uint64 {
		b, err := os.ReadFile("/proc/self/stat")
		if err != nil {
			t.Skipf("no /proc: %v", err)
		}
		v, err := parseStatCPU(string(b))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ticks, _ := clockTicks()
	tv := func(v syscall.Timeval) time.Duration {
		return time.Duration(v.Sec)*time.Second + time.Duration(v.Usec)*time.Microsecond
	}
	used := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return tv(ru.Utime) + tv(ru.Stime)
	}
	before, ru0 := read(), used()
	// Spin until the kernel has charged 300 ms of CPU to this process (wall time varies on a
	// shared machine, CPU time does not).
	x := 0
	for used()-ru0 < 300*time.Millisecond {
		for i := 0; i < 10000; i++ {
			x += i * i
		}
	}
	_ = x
	after, rusage := read(), used()-ru0
	proc := time.Duration(after-before) * time.Second / time.Duration(ticks)
	if proc < 200*time.Millisecond {
		t.Fatalf("/proc says %v of CPU, getrusage %v", proc, rusage)
	}
	// Tick accounting and getrusage differ by sampling, not by more than a few ticks.
	if d := proc - rusage; d > 60*time.Millisecond || d < -60*time.Millisecond {
		t.Errorf("/proc %v vs getrusage %v", proc, rusage)
	}
}

func TestParseStatusAndIO(t *testing.T) {
	status := "Name:\troapproxy\nVmPeak:\t  812345 kB\nVmHWM:\t   45678 kB\nVmRSS:\t   34567 kB\nThreads:\t9\n"
	if v, err := parseStatusKB(status, "VmRSS"); err != nil || v != 34567 {
		t.Errorf("VmRSS = %d, %v", v, err)
	}
	if v, err := parseStatusKB(status, "VmHWM"); err != nil || v != 45678 {
		t.Errorf("VmHWM = %d, %v", v, err)
	}
	if _, err := parseStatusKB(status, "VmSwap"); err == nil {
		t.Error("missing VmSwap: no error")
	}
	if _, err := parseStatusKB("VmRSS:\t12 MB\n", "VmRSS"); err == nil {
		t.Error("unit MB: no error")
	}
	if _, err := parseStatusKB("VmRSSx:\t12 kB\n", "VmRSS"); err == nil {
		t.Error("a longer key matched VmRSS")
	}
	if v, err := parseIOField("rchar: 10\nwchar: 4096\nsyscr: 3\n", "wchar"); err != nil || v != 4096 {
		t.Errorf("wchar = %d, %v", v, err)
	}
	// The test binary's own group holds at least the test binary.
	own, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	_, mine, _ := parseStatGroup(string(own))
	if g := groupCPU(syscall.Getpgrp()); g < mine {
		t.Errorf("groupCPU of own group %d < own %d", g, mine)
	}
	if g := groupCPU(-7); g != 0 {
		t.Errorf("groupCPU of no group = %d", g)
	}
	s, err := sampleProc(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if s.RSSKB == 0 || s.HWMKB < s.RSSKB || s.CPUTicks == 0 {
		t.Errorf("own process: %+v", s)
	}
}

func TestParseLevels(t *testing.T) {
	if got, err := parseLevels(" 1, 32 ,"); err != nil || !slices.Equal(got, []int{1, 32}) {
		t.Errorf("parseLevels = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "a", "1,-2", "5000"} {
		if _, err := parseLevels(bad); err == nil {
			t.Errorf("parseLevels(%q): no error", bad)
		}
	}
}

// The client must count a body that differs from the upstream's as an error: a proxy that
// alters bytes must not pass as fast.
func TestClientChecksBody(t *testing.T) {
	pl := &payload{exchanges: []exchange{{req: []byte("<a/>"), resp: []byte("<b/>")}}}
	for _, c := range []struct {
		status int
		body   string
		ok     bool
	}{{200, "<b/>", true}, {200, "<b />", false}, {502, "<b/>", false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(c.status)
			w.Write([]byte(c.body))
		}))
		cl := newClient(srv.URL, pl, 1)
		var buf bytes.Buffer
		err := cl.do(context.Background(), pl.exchanges[0], &buf)
		if (err == nil) != c.ok {
			t.Errorf("status %d body %q: err %v", c.status, c.body, err)
		}
		cl.close()
		srv.Close()
	}
}

func TestFixedRateHoldsRate(t *testing.T) {
	pl, err := newPayload(4, 1024, ShapeTypical)
	if err != nil {
		t.Fatal(err)
	}
	up, err := startUpstream(pl)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	c := newClient(up.URL, pl, 16)
	defer c.close()
	r := fixedRate(context.Background(), c, 400, time.Second, 16)
	if r.Errors != 0 || r.Shed != 0 {
		t.Fatalf("errors %d (%s), shed %d", r.Errors, r.FirstErr, r.Shed)
	}
	if r.Requests != 400 {
		t.Errorf("%d requests, want 400", r.Requests)
	}
	// The schedule spans one second: finishing much earlier means it did not pace.
	if r.Elapsed < 900*time.Millisecond || r.Elapsed > 10*time.Second {
		t.Errorf("400 requests at 400/s took %v", r.Elapsed)
	}
}

func TestMeasureEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs roapproxy")
	}
	var log bytes.Buffer
	// The same build twice: once as the build measured, once as the --compare build.
	bin, err := buildProxy(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Measure(context.Background(), Config{Bin: bin, Compare: bin,
		Concurrency: []int{4}, Requests: 200, Rounds: 2, Variants: 16, Bits: 2048, Probe: true, NullProxy: true, Relay: true, Log: &log,
	})
	if err != nil {
		t.Fatalf("Measure: %v\n%s", err, log.String())
	}
	if len(rep.Cells) != 6 || len(rep.RoundCells) != 12 || rep.Rounds != 2 {
		t.Fatalf("%d cells from %d round cells in %d rounds, want 6 from 12 in 2", len(rep.Cells), len(rep.RoundCells), rep.Rounds)
	}
	// The rounds rotate the order: the path measured first differs between them.
	if rep.RoundCells[0].Path == rep.RoundCells[6].Path || rep.RoundCells[0].Round != 1 || rep.RoundCells[6].Round != 2 {
		t.Errorf("round order: %s (round %d) then %s (round %d)", rep.RoundCells[0].Path, rep.RoundCells[0].Round, rep.RoundCells[6].Path, rep.RoundCells[6].Round)
	}
	// Each round pairs the two builds; with 200 requests a cell the CPU figures are coarse, so
	// only their presence is checked.
	if rep.Compare != bin || len(rep.CompareCPURounds) != 2 || rep.CompareCPU <= 0 {
		t.Errorf("--compare: %q, CPU ratio %.2f from rounds %v", rep.Compare, rep.CompareCPU, rep.CompareCPURounds)
	}
	paths := map[string]bool{}
	for _, c := range rep.Cells {
		paths[c.Path] = true
		if c.Errors != 0 {
			t.Errorf("%s: %d errors, first: %s", c.Path, c.Errors, c.FirstError)
		}
		if c.Requests != 400 || c.Rounds != 2 || c.RPS <= 0 || c.P50us <= 0 || c.P99us < c.P50us ||
			c.RPSRange[0] > c.RPS || c.RPS > c.RPSRange[1] || (c.Proxied && (c.CPURange[0] > c.CPUus || c.CPUus > c.CPURange[1])) {
			t.Errorf("%s: implausible %+v", c.Path, c)
		}
		if c.Proxied != (c.Path != pathDirect) {
			t.Errorf("%s: proxied %v", c.Path, c.Proxied)
		}
		if c.Proxied && (c.CPUus <= 0 || c.RSSMB <= 1 || c.PeakRSSMB < c.RSSMB) {
			t.Errorf("%s: proxy counters %+v", c.Path, c)
		}
		// A proxy reads each request and writes it on at least once: under two I/O calls per
		// request means the counters were misread (where /proc/<pid>/io is readable at all).
		if _, err := os.ReadFile("/proc/self/io"); err == nil && c.Proxied && c.IOCallsPerRq < 2 {
			t.Errorf("%s: %.2f I/O calls per request", c.Path, c.IOCallsPerRq)
		}
	}
	for _, p := range []string{pathDirect, pathRelay, pathNull, pathNoVerify, pathVerify, pathCompare} {
		if !paths[p] {
			t.Errorf("no %q cell", p)
		}
	}
	if !rep.UpstreamProcess {
		t.Error("the upstream ran in-process by default")
	}
	// The default shape's responses carry no chain: the probe passing shows the verifying proxy
	// checked them with the RI certificate it learnt from the prelude.
	if rep.Probe == nil || !rep.Probe.Active || rep.Exchange != ShapeTypical {
		t.Errorf("verification probe on the %q exchange: %+v", rep.Exchange, rep.Probe)
	}
	if rep.RequestBytes < 3000 || rep.ResponseBytes < 4000 {
		t.Errorf("bodies %d / %d bytes: not the realistic sizes", rep.RequestBytes, rep.ResponseBytes)
	}
	// Only concurrency 4 ran, so there is no concurrency-1 ratio, but the CPU target is judged.
	if rep.ThroughputRatioC1 != 0 {
		t.Errorf("throughput ratio %v without a concurrency-1 cell", rep.ThroughputRatioC1)
	}
	// The relay parses nothing, so the verifying proxy must cost more CPU than it; a ratio of
	// zero would mean a floor cell went missing.
	if rep.FloorConc != 4 || rep.VerifyCPURelay <= 1 || rep.VerifyCPUNull <= 0 || rep.NoVerifyCPURelay <= 0 {
		t.Errorf("floor ratios: conc %d, verify/relay %.2f, verify/httputil %.2f, no-verify/relay %.2f",
			rep.FloorConc, rep.VerifyCPURelay, rep.VerifyCPUNull, rep.NoVerifyCPURelay)
	}
	md := renderMarkdown(rep, []string{"--requests", "200"})
	for _, want := range []string{"| path | conc. |", "| direct | 4 | 400 |", "measured 2 times", "proxy I/O calls/req", "proxy CPU per request", "request errors in all cells | 0 | 0 | yes",
		"| TCP relay (floor) | 4 | 400 |", "against the TCP relay: verifying ", "Against the --compare build ("} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestPairsFileRoundTrip(t *testing.T) {
	pl, err := newPayload(3, 1024, ShapeFull)
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/pairs.bin"
	if err := writePairs(path, pl); err != nil {
		t.Fatal(err)
	}
	got, err := readPairs(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(pl.byRequest) {
		t.Fatalf("%d pairs, want %d", len(got), len(pl.byRequest))
	}
	for req, resp := range pl.byRequest {
		if !bytes.Equal(got[req], resp) {
			t.Fatalf("pair for a %d-byte request differs", len(req))
		}
	}
	if err := os.WriteFile(path, []byte{0, 0, 0, 9, 'x'}, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readPairs(path); err == nil {
		t.Error("a truncated pairs file was accepted")
	}
}

func TestMergeRoundsAndPairedRatios(t *testing.T) {
	cell := func(path string, round int, rps, cpu float64) Cell {
		return Cell{Path: path, Concurrency: 1, Round: round, Requests: 10, RPS: rps, P50us: 1e6 / rps, P99us: 2e6 / rps,
			Proxied: path != pathDirect, CPUus: cpu, RSSMB: float64(round)}
	}
	// Round 2 is a slow minute for both paths: their ratio holds, though the rates do not.
	raw := []Cell{
		cell(pathDirect, 1, 1000, 0), cell(pathVerify, 1, 500, 150),
		cell(pathVerify, 2, 250, 300), cell(pathDirect, 2, 500, 0),
		cell(pathDirect, 3, 1100, 0), cell(pathVerify, 3, 540, 140),
	}
	cells := mergeRounds(raw)
	if len(cells) != 2 || cells[0].Path != pathDirect || cells[1].Path != pathVerify {
		t.Fatalf("merged %+v", cells)
	}
	v := cells[1]
	if v.Rounds != 3 || v.Requests != 30 || v.RPS != 500 || v.RPSRange != [2]float64{250, 540} ||
		v.CPUus != 150 || v.CPURange != [2]float64{140, 300} || v.RSSMB != 3 || v.Round != 0 {
		t.Errorf("merged verifying cell %+v", v)
	}
	rep := &Report{Cells: cells, RoundCells: raw, Rounds: 3}
	rps := func(c Cell) float64 { return c.RPS }
	// Per round: 0.5, 0.5, 0.49; the ratio of the medians would be 500/1000 = 0.5 too, but the
	// pairing is what keeps a slow round from mixing with a fast one.
	if got := rep.paired(pathVerify, 1, pathDirect, 1, rps); got != 0.5 {
		t.Errorf("paired ratio %v, want 0.5", got)
	}
	if got := rep.paired(pathRelay, 1, pathDirect, 1, rps); got != 0 {
		t.Errorf("ratio with a missing path %v, want 0", got)
	}
	one := &Report{Cells: mergeRounds(raw[:2]), Rounds: 1}
	if got := one.paired(pathVerify, 1, pathDirect, 1, rps); got != 0.5 || one.Cells[1].Rounds != 0 {
		t.Errorf("single round: ratio %v, cell %+v", got, one.Cells[1])
	}
	if median([]float64{3, 1, 2, 10}) != 2.5 || median(nil) != 0 {
		t.Error("median")
	}
}
