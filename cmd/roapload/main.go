// Command roapload measures what roapproxy costs on the forwarding path. In one run, on
// loopback only, it sends signed ROAP exchanges (by default a 3.7 KB roRequest with the device
// chain and a 4.6 KB roResponse with a protected RO and an OCSP response, the RI chain learnt
// from a first exchange; --exchange full sends the RI chain in every 9.4 KB response) to a
// simulated RI five ways: directly, through two floors (a TCP relay that parses nothing and a bare
// net/http/httputil reverse proxy), through `roapproxy run --no-verify`, and through a
// verifying `roapproxy run`. Each proxy is a subprocess, so its CPU time, system calls and
// resident memory come from /proc. Because shared machines are noisy, every figure is also
// given as a ratio to a baseline measured in the same run.
//
//	go run ./cmd/roapload [--duration 5s] [--rounds 3] [--concurrency 1,32] [--exchange typical|full] [--flows 100000] [--ui-tab] [--json FILE]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
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
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("roapload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./cmd/roapload [flags]\n\nMeasures roapproxy on loopback: direct vs proxied without and with verification.\n\n")
		fs.PrintDefaults()
	}
	var (
		cfg      Config
		conc     = "1,32"
		jsonPath string
	)
	fs.StringVar(&cfg.Bin, "bin", "", "roapproxy `binary` to measure (default: go build ./cmd/roapproxy into a temporary folder)")
	fs.StringVar(&cfg.Compare, "compare", "", "also measure this roapproxy `binary` verifying, as one more path in the same rounds, and give the measured build's CPU and throughput as ratios to it (A/B of two builds)")
	fs.StringVar(&conc, "concurrency", conc, "closed-loop concurrency `levels`, comma-separated")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "measuring time per cell")
	fs.IntVar(&cfg.Requests, "requests", 0, "requests per cell (replaces --duration when > 0)")
	fs.IntVar(&cfg.Rounds, "rounds", 3, "measure every path and concurrency this many times, the paths in a rotating order, and report medians (ratios: the median of each round's ratio)")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "unmeasured load before each cell")
	fs.IntVar(&cfg.Variants, "variants", 256, "distinct signed exchanges (each with its own nonce) cycled through")
	fs.StringVar(&cfg.Exchange, "exchange", ShapeTypical, "exchange `shape`: "+ShapeTypical+" (after registration: the device names the RI key with PeerKeyIdentifier, so the response has no RI chain; the CA signs OCSP; ~3.7 KB up, ~4.6 KB down) or "+ShapeFull+" (first contact: RI chain and a delegated responder's OCSP response with its certificates; ~3.4 KB up, ~9.4 KB down)")
	fs.IntVar(&cfg.Bits, "bits", 2048, "RSA key size of the test PKI")
	fs.IntVar(&cfg.Flows, "flows", 0, "RSS check: send this many requests through the verifying proxy at concurrency 32 (e.g. 100000; 0 skips)")
	fs.BoolVar(&cfg.Relay, "relay", true, "also measure a process that relays TCP through a buffer without parsing it: the least any process that reads the traffic pays")
	fs.BoolVar(&cfg.NullProxy, "null-proxy", true, "also measure a plain net/http/httputil reverse proxy process: the floor any proxy pays for the extra hop")
	fs.BoolVar(&cfg.Probe, "probe", true, "first check that the verifying proxy flags a corrupted signature, and report it")
	fs.BoolVar(&cfg.UITab, "ui-tab", false, "also measure a fixed request rate with and without a headless Chromium tab on the web UI")
	fs.DurationVar(&cfg.UIDuration, "ui-duration", 10*time.Second, "length of each --ui-tab run")
	fs.Float64Var(&cfg.UIRate, "ui-rate", 2000, "requests (= UI events) per second in --ui-tab mode")
	fs.StringVar(&cfg.Chromium, "chromium", "/usr/bin/chromium", "Chromium `binary` for --ui-tab")
	fs.BoolVar(&cfg.InProcessUpstream, "in-process-upstream", false, "run the simulated RI inside the load tool instead of as its own process (direct then has no process switch at all)")
	fs.StringVar(&cfg.ProfileDir, "profile-dir", "", "write a CPU and an allocation profile of each roapproxy run into this `folder` (roapproxy run --cpuprofile, --memprofile)")
	fs.StringVar(&jsonPath, "json", "", "also write the results as JSON to this `file`")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "roapload: unexpected arguments %q\n", fs.Args())
		return 2
	}
	levels, err := parseLevels(conc)
	if err != nil {
		fmt.Fprintf(stderr, "roapload: --concurrency: %v\n", err)
		return 2
	}
	cfg.Concurrency = levels
	if cfg.Rounds < 1 {
		fmt.Fprintln(stderr, "roapload: --rounds must be at least 1")
		return 2
	}
	if cfg.Requests <= 0 && cfg.Duration <= 0 {
		fmt.Fprintln(stderr, "roapload: --duration or --requests must be positive")
		return 2
	}
	if cfg.UITab && (cfg.UIRate <= 0 || cfg.UIDuration <= 0) {
		fmt.Fprintln(stderr, "roapload: --ui-rate and --ui-duration must be positive")
		return 2
	}
	if !*quiet {
		cfg.Log = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Measure(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "roapload: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, renderMarkdown(rep, args))
	if jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(jsonPath, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "roapload: --json: %v\n", err)
			return 1
		}
	}
	for _, t := range rep.Targets {
		if t.Name == "request errors in all cells" && !t.Met {
			return 1
		}
	}
	return 0
}

func parseLevels(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 4096 {
			return nil, fmt.Errorf("%q is not a concurrency between 1 and 4096", p)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no levels in %q", s)
	}
	return out, nil
}

// renderMarkdown prints the report as markdown tables.
func renderMarkdown(r *Report, args []string) string {
	var b strings.Builder
	cmd := "go run ./cmd/roapload"
	if len(args) > 0 {
		cmd += " " + strings.Join(args, " ")
	}
	fmt.Fprintf(&b, "## roapload results\n\n")
	commit := ""
	if r.Commit != "" {
		commit = ", commit " + r.Commit
	}
	fmt.Fprintf(&b, "`%s` — %s%s, %d CPUs (%s), %s; %s exchange: request %d B, response %d B, %d variants, RSA-%d; clock ticks %d/s%s; run took %.0f s.\n\n",
		cmd, r.Started.Format("2006-01-02 15:04 UTC"), commit, r.CPUs, r.CPUModel, r.GoVersion, r.Exchange, r.RequestBytes, r.ResponseBytes,
		r.Variants, r.Bits, r.ClockTicks, map[bool]string{true: " (guessed)", false: ""}[r.ClockGuessed], r.Elapsed)
	if r.UpstreamProcess {
		fmt.Fprintf(&b, "The simulated RI runs as its own process, as a real one would (--in-process-upstream changes that).\n\n")
	} else {
		fmt.Fprintf(&b, "The simulated RI runs inside the load tool (--in-process-upstream): direct has no process switch.\n\n")
	}
	if r.LoadBefore != "" {
		fmt.Fprintf(&b, "Load average before / after the run: %s / %s.\n\n", r.LoadBefore, r.LoadAfter)
	}
	if r.Probe != nil {
		fmt.Fprintf(&b, "Verification: %s. Findings on a valid exchange: %s; with a corrupted request signature: %s; with a corrupted response signature: %s.\n\n",
			r.Probe.Note, listOrNone(r.Probe.ValidFindings), listOrNone(r.Probe.CorruptFlagged), listOrNone(r.Probe.CorruptRespFlagged))
	}
	if r.Rounds > 1 {
		fmt.Fprintf(&b, "Every path and concurrency was measured %d times, the paths in a rotating order. A row gives the medians, with the lowest and highest round in brackets, and the requests of all rounds; a ratio is the median of the ratios within each round.\n\n", r.Rounds)
	}
	fmt.Fprintf(&b, "| path | conc. | requests | req/s | p50 | p99 | proxy CPU/req | proxy I/O calls/req | proxy RSS | errors |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	row := func(c Cell) {
		calls := "–"
		if c.IOCallsPerRq > 0 {
			calls = fmt.Sprintf("%.1f", c.IOCallsPerRq)
		}
		rate := fmt.Sprintf("%.0f", c.RPS)
		if c.Rounds > 1 {
			rate += fmt.Sprintf(" (%.0f–%.0f)", c.RPSRange[0], c.RPSRange[1])
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %d |\n", c.Path, loadLabel(c), c.Requests, rate,
			fmtUs(c.P50us), fmtUs(c.P99us), cpuStr(c), calls, rssStr(c), c.Errors)
	}
	for _, c := range r.Cells {
		row(c)
	}
	if r.Flows != nil {
		row(*r.Flows)
	}
	if u := r.UI; u != nil && u.WithoutTab != nil && u.WithTab != nil {
		row(*u.WithoutTab)
		if u.WithBusyCore != nil {
			row(*u.WithBusyCore)
		}
		row(*u.WithTab)
	}
	b.WriteString("\n")
	// A ratio is 0 when one of its cells was not measured (a floor turned off).
	more := func(label string, v float64) {
		if v > 0 {
			fmt.Fprintf(&b, ", %s %.2f×", label, v)
		}
	}
	if r.ThroughputRatioC1 > 0 {
		fmt.Fprintf(&b, "Ratios at concurrency 1 against direct: throughput verifying %.2f×, --no-verify %.2f×", r.ThroughputRatioC1, r.NoVerifyRatioC1)
		more("httputil floor", r.NullRatioC1)
		more("TCP relay floor", r.RelayRatioC1)
		fmt.Fprintf(&b, "; p50 verifying %.2f×.\n", r.P50RatioC1)
	}
	if r.VerifyCPURelay > 0 {
		fmt.Fprintf(&b, "\nProxy CPU per request at concurrency %d against the TCP relay: verifying %.2f×", r.FloorConc, r.VerifyCPURelay)
		more("--no-verify", r.NoVerifyCPURelay)
		more("httputil", r.NullCPURelay)
		b.WriteString(".")
		if r.VerifyCPUNull > 0 {
			fmt.Fprintf(&b, " Verifying against httputil: %.2f×.", r.VerifyCPUNull)
		}
		b.WriteString("\n")
	} else if r.VerifyCPUNull > 0 {
		fmt.Fprintf(&b, "\nProxy CPU per request at concurrency %d, verifying against httputil: %.2f×.\n", r.FloorConc, r.VerifyCPUNull)
	}
	if r.Compare != "" && r.CompareCPU > 0 {
		fmt.Fprintf(&b, "\nAgainst the --compare build (%s): verifying CPU per request at concurrency %d %.3f× (rounds %s)", r.Compare, r.FloorConc, r.CompareCPU, joinRatios(r.CompareCPURounds))
		if r.CompareRPSC1 > 0 {
			fmt.Fprintf(&b, ", throughput at concurrency 1 %.3f×", r.CompareRPSC1)
		}
		b.WriteString(".\n")
	}
	if u := r.UI; u != nil {
		if u.Skipped != "" {
			fmt.Fprintf(&b, "UI tab: %s.\n", u.Skipped)
		} else {
			fmt.Fprintf(&b, "UI tab (with ÷ without): rate %.2f×, p50 %.2f×, p99 %.2f×, proxy CPU/req %.2f×; the proxy wrote %+.0f B per flow more with the tab open than without (its websocket stream to the tab)",
				u.RateRatio, u.P50Ratio, u.P99Ratio, u.CPURatio, u.UIBytesPerEvent)
			fmt.Fprintf(&b, "; Chromium used %.2f cores meanwhile", u.BrowserCores)
			if u.WithBusyCore != nil {
				fmt.Fprintf(&b, ". Against the control with a busy loop taking %.2f cores instead of the tab: p50 %.2f×, proxy CPU/req %.2f×", u.SpinnerCores, u.P50VsBusy, u.CPUVsBusy)
			}
			if u.WithTab.Shed > 0 || u.WithoutTab.Shed > 0 {
				fmt.Fprintf(&b, "; requests shed (no worker free within 1 s of their slot) without / with tab: %d / %d", u.WithoutTab.Shed, u.WithTab.Shed)
			}
			b.WriteString(".\n")
		}
	}
	b.WriteString("\n| target | want | measured | met |\n|---|---|---:|---|\n")
	for _, t := range r.Targets {
		got := fmt.Sprintf("%.2f %s", t.Got, t.Unit)
		switch t.Unit {
		case "":
			got = fmt.Sprintf("%.0f", t.Got)
		case "µs", "MB":
			got = fmt.Sprintf("%.0f %s", t.Got, t.Unit)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Name, t.Want, got, map[bool]string{true: "yes", false: "**no**"}[t.Met])
	}
	if r.Probe != nil && !r.Probe.Active {
		b.WriteString("\n**Verification was not active in `roapproxy run` during this run: the \"verifying\" rows measure decoding only.**\n")
	}
	return b.String()
}

// loadLabel is the concurrency of a closed-loop cell or the rate of a fixed-rate one.
func loadLabel(c Cell) string {
	if c.TargetRate > 0 {
		return fmt.Sprintf("%.0f/s", c.TargetRate)
	}
	return strconv.Itoa(c.Concurrency)
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func fmtUs(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func cpuStr(c Cell) string {
	if !c.Proxied {
		return "–"
	}
	if c.Rounds > 1 {
		return fmt.Sprintf("%.0f µs (%.0f–%.0f)", c.CPUus, c.CPURange[0], c.CPURange[1])
	}
	return fmt.Sprintf("%.0f µs", c.CPUus)
}

func rssStr(c Cell) string {
	if !c.Proxied {
		return "–"
	}
	return fmt.Sprintf("%.1f MB", c.RSSMB)
}

func joinRatios(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.3f", x)
	}
	return strings.Join(parts, ", ")
}
