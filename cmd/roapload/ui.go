package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// rateWorkers bounds the requests in flight in rate mode; at 2,000 requests/s and sub-ms
// latencies a handful are busy, the rest absorb a stall without shedding.
const rateWorkers = 64

// measureUI runs the verifying proxy with its web UI and drives a fixed request rate twice:
// with nobody watching, then with a headless Chromium tab open on the UI, which receives one
// websocket event per flow.
func measureUI(ctx context.Context, cfg *Config, m cellMeasurer, pcfg proxyConfig, pl *payload) (*UIResult, error) {
	res := &UIResult{Rate: cfg.UIRate}
	browser := cfg.Chromium
	if browser == "" {
		browser = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(browser); err != nil {
		res.Skipped = fmt.Sprintf("%s not found (%v): UI tab mode skipped", browser, err)
		cfg.logf("%s", res.Skipped)
		return res, nil
	}
	proc, err := startProxy(pcfg)
	if err != nil {
		return nil, err
	}
	defer proc.kill()
	c, err := connect(ctx, proc.Reverse, pl, rateWorkers)
	if err != nil {
		return nil, err
	}
	defer c.close()
	name := fmt.Sprintf("verifying + UI, %.0f req/s", cfg.UIRate)
	run := func(label string) (*Cell, error) {
		cell, err := m.sampled(ctx, name+", "+label, proc, func() *runResult {
			return fixedRate(ctx, c, cfg.UIRate, cfg.UIDuration, rateWorkers)
		}, Cell{Path: name + ", " + label, TargetRate: cfg.UIRate})
		return &cell, err
	}
	cfg.logf("UI mode: %.0f requests/s for %v, first without a browser…", cfg.UIRate, cfg.UIDuration)
	// Warm up at the target rate so the capture store is filling in both measured runs alike,
	// rather than the first one paying for its growth alone.
	fixedRate(ctx, c, cfg.UIRate, min(3*time.Second, cfg.UIDuration), rateWorkers)
	if res.WithoutTab, err = run("no tab"); err != nil {
		return nil, err
	}

	// The control: the same run while a busy loop takes one core, as the tab's Chromium will. On
	// a 2-core machine shared by client, upstream and proxy, losing a core raises latency by
	// itself; comparing the tab with this, not only with an idle machine, leaves what serving
	// the tab costs the proxy.
	cfg.logf("UI mode: again with one core taken by a busy loop (the control)…")
	spin, err := startSpinner()
	if err != nil {
		return nil, err
	}
	spinBefore := procCPU(spin.Process.Pid)
	res.WithBusyCore, err = run("no tab, 1 core busy")
	res.SpinnerCores = float64(procCPU(spin.Process.Pid)-spinBefore) / float64(m.ticks) / max(res.WithBusyCore.Seconds, 1e-9)
	_ = spin.Process.Kill()
	_ = spin.Wait()
	if err != nil {
		return nil, err
	}

	cfg.logf("UI mode: starting headless Chromium on %s…", proc.UI)
	tab, err := startChromium(browser, proc.UI)
	if err != nil {
		return nil, err
	}
	defer tab.stop()
	// Let the page load, open its stream and take the initial snapshot before measuring.
	select {
	case <-time.After(3 * time.Second):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	browserBefore := groupCPU(tab.cmd.Process.Pid)
	if res.WithTab, err = run("1 tab"); err != nil {
		return nil, err
	}
	// The browser shares the machine with the proxy: how much it took explains part of any
	// slowdown on a small box.
	res.BrowserCores = float64(groupCPU(tab.cmd.Process.Pid)-browserBefore) / float64(m.ticks) / res.WithTab.Seconds
	tab.stop()
	if err := proc.stop(); err != nil {
		return nil, err
	}
	w, t := res.WithoutTab, res.WithTab
	res.RateRatio, res.P50Ratio, res.P99Ratio = ratio(t.RPS, w.RPS), ratio(t.P50us, w.P50us), ratio(t.P99us, w.P99us)
	res.CPURatio = ratio(t.CPUus, w.CPUus)
	res.P50VsBusy, res.CPUVsBusy = ratio(t.P50us, res.WithBusyCore.P50us), ratio(t.CPUus, res.WithBusyCore.CPUus)
	if w.WriteBPerRq > 0 && t.WriteBPerRq > 0 {
		// What the proxy wrote per flow beyond forwarding: the websocket stream to the tab.
		res.UIBytesPerEvent = t.WriteBPerRq - w.WriteBPerRq
	}
	return res, nil
}

// pinned runs a command on the machine's last CPU when taskset is there. The browser and the
// control's busy loop then take the same share of the machine in the same shape: Chromium's
// several processes could otherwise burst across every core where the loop takes one.
func pinned(bin string, args ...string) *exec.Cmd {
	ts, err := exec.LookPath("taskset")
	if err != nil || runtime.NumCPU() < 2 {
		return exec.Command(bin, args...)
	}
	return exec.Command(ts, append([]string{"-c", strconv.Itoa(runtime.NumCPU() - 1), bin}, args...)...)
}

// spinnerEnv makes this program a busy loop on one core until killed (the control run).
const spinnerEnv = "ROAPLOAD_SPIN"

func startSpinner() (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := pinned(self)
	cmd.Env = append(os.Environ(), spinnerEnv+"=1", "GOMAXPROCS=1")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the busy loop: %w", err)
	}
	return cmd, nil
}

// runSpinner never returns; the parent kills it.
func runSpinner() int {
	x := uint64(1)
	for {
		x = x*6364136223846793005 + 1442695040888963407
		if x == 0 {
			return int(x)
		}
	}
}

// chromium is a headless browser in its own process group, so its helper processes end with it.
type chromium struct {
	cmd  *exec.Cmd
	dir  string
	done chan struct{}
}

func startChromium(bin, url string) (*chromium, error) {
	dir, err := os.MkdirTemp("", "roapload-chromium-")
	if err != nil {
		return nil, err
	}
	cmd := pinned(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir="+dir,
		"--remote-debugging-port=0", url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	b := &chromium{cmd: cmd, dir: dir, done: make(chan struct{})}
	ready := make(chan struct{})
	var (
		mu   sync.Mutex
		tail []string
	)
	lines := func() string { mu.Lock(); defer mu.Unlock(); return strings.Join(tail, "\n") }
	go func() {
		// Chromium prints "DevTools listening on ws://…" once the browser is up; keep draining
		// afterwards so it never blocks on a full pipe.
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			if !signalled {
				mu.Lock()
				tail = append(tail, line)
				mu.Unlock()
				if strings.Contains(line, "DevTools listening on") {
					signalled = true
					close(ready)
				}
			}
		}
		_ = cmd.Wait()
		close(b.done)
	}()
	select {
	case <-ready:
		return b, nil
	case <-b.done:
		b.stop()
		return nil, fmt.Errorf("chromium exited at start:\n%s", lines())
	case <-time.After(30 * time.Second):
		b.stop()
		return nil, fmt.Errorf("chromium did not start within 30 s:\n%s", lines())
	}
}

// stop kills the browser's process group (only processes this tool started) and removes its
// profile; it is safe to call twice.
func (b *chromium) stop() {
	if b.cmd.Process != nil {
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
	}
	if b.dir != "" {
		os.RemoveAll(filepath.Clean(b.dir))
		b.dir = ""
	}
}
