package main

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/roapproxy/roapproxy/intercept"
	"github.com/roapproxy/roapproxy/sim"
	"github.com/roapproxy/roapproxy/verify"
)

func init() {
	register(command{
		name:    "demo",
		summary: "the proxy with simulated devices, RIs, DEA and OCSP responder sending through it; web UI on --ui",
		run:     runDemo,
	})
}

const demoAbout = `Starts roapproxy as in 'run', then a simulated OCSP responder, two Rights Issuers, a Domain
Enforcement Agent and DRM Agents whose every request goes through the proxy: registration, RO
acquisition (2-pass and 1-pass), device and user domains (including the seed 000 proxy leave
through the DEA and the DEA-triggered leave), tokens (seed 001) and metering, in a loop. The
verifier is given the simulation's trust anchor and RI↔DEA MAC keys, so every check runs.
Open the printed web UI address to watch the annotated traffic.`

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o proxyOptions
	fs := newFlagSet("demo", "demo [flags]", demoAbout)
	o.addFlags(fs)
	rate := fs.Float64("rate", 2, "scenarios per second")
	once := fs.Bool("once", false, "run every scenario once, then keep serving the UI until interrupted")
	bits := fs.Int("bits", 2048, "RSA key size of the simulated PKI (1024 or 2048)")
	if err := o.loadConfigFile(args); err != nil {
		fmt.Fprintf(stderr, "roapproxy demo: %v\n", err)
		return 2
	}
	if ok, code := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 || *rate <= 0 || (*bits != 1024 && *bits != 2048) {
		fmt.Fprintln(stderr, "roapproxy demo: takes no arguments; --rate must be positive; --bits 1024 or 2048")
		return 2
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0" // the simulated peers need the forward proxy
	}
	pki, err := sim.NewPKI(sim.PKIOptions{Bits: *bits})
	if err != nil {
		fmt.Fprintf(stderr, "roapproxy demo: %v\n", err)
		return 1
	}
	r, err := startProxy(ctx, &o, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "roapproxy demo: %v\n", err)
		return 1
	}
	s, err := sim.Start(sim.Options{PKI: pki, Proxy: r.ProxyURL})
	if err != nil {
		fmt.Fprintf(stderr, "roapproxy demo: %v\n", err)
		return 1
	}
	defer s.Close()
	if vj, ok := r.Judge.(*intercept.VerifyJudge); ok {
		trustSimulation(vj.Verifier().Trust(), s)
	}
	fmt.Fprintf(stderr, "demo: OCSP responder, 2 RIs, DEA and %d DRM Agents on loopback, all sending through the proxy\n", len(s.Agents))
	r.describe(stderr)

	var failures atomic.Int64
	report := func(name string, err error) {
		if err != nil {
			failures.Add(1)
			fmt.Fprintf(stderr, "demo: scenario %s failed: %v\n", name, err)
		}
	}
	if *once {
		for _, sc := range s.Scenarios() {
			report(sc.Name, s.Run(ctx, sc))
		}
		fmt.Fprintln(stderr, "demo: every scenario ran once; the UI stays up until interrupted")
	} else {
		go s.Loop(ctx, *rate, report)
	}
	<-ctx.Done()
	fmt.Fprintln(stderr, "shutting down…")
	s.Close()
	// Give in-flight scenario requests a moment to fail fast against closed peers.
	time.Sleep(50 * time.Millisecond)
	if err := r.wait(); err != nil {
		fmt.Fprintf(stderr, "roapproxy demo: %v\n", err)
		return 1
	}
	if *once && failures.Load() > 0 {
		return 1
	}
	return 0
}

// trustSimulation tells the verifier what an operator would configure for real peers: the trust
// anchor of their PKI and the MAC key of each RI↔DEA context.
func trustSimulation(t *verify.Trust, s *sim.Sim) {
	t.AddAnchors(s.PKI.Root.Cert)
	for _, ri := range s.RIs {
		l := ri.DEALink()
		if l.MK == nil {
			continue
		}
		alg := verify.MACHMACSHA1
		if l.Alg == sim.HMACSHA256 {
			alg = verify.MACHMACSHA256
		}
		t.AddMACKey(verify.MACKey{RI: ri.ID(), DEA: l.ID, Key: l.MK, Alg: alg, Source: "demo context " + ri.Name()})
	}
}
