package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

func init() {
	register(command{
		name:    "run",
		summary: "run the proxy: forward (HTTP and intercepted HTTPS) and reverse listeners, live view and web UI",
		run:     runProxy,
	})
}

const runAbout = `Runs the interception proxy. Point devices at the forward proxy (--listen) and install the CA
from http://roapproxy.ca/ through it, or put reverse listeners (--reverse ADDR=URL) in front of an
RI or a DEA so peers can be pointed at roapproxy as if it were that server. Both legs (device ↔ RI
and RI ↔ DEA) should go through one process so the cross-leg rules apply. Every message is decoded
and verified live; one line per flow is printed, and the web UI shows everything.`

func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o proxyOptions
	fs := newFlagSet("run", "run [flags]", runAbout)
	o.addFlags(fs)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this `file` at shutdown (for `go tool pprof`)")
	memProfile := fs.String("memprofile", "", "write an allocation profile of the whole run to this `file` at shutdown")
	if err := o.loadConfigFile(args); err != nil {
		fmt.Fprintf(stderr, "roapproxy run: %v\n", err)
		return 2
	}
	if ok, code := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "roapproxy run: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(pf)
		}
		if err != nil {
			fmt.Fprintf(stderr, "roapproxy run: --cpuprofile: %v\n", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			pf.Close()
		}()
	}
	if *memProfile != "" {
		defer func() {
			pf, err := os.Create(*memProfile)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(pf, 0)
				pf.Close()
			}
			if err != nil {
				fmt.Fprintf(stderr, "roapproxy run: --memprofile: %v\n", err)
			}
		}()
	}
	r, err := startProxy(ctx, &o, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "roapproxy run: %v\n", err)
		return 1
	}
	r.describe(stderr)
	<-ctx.Done()
	fmt.Fprintln(stderr, "shutting down…")
	if err := r.wait(); err != nil {
		fmt.Fprintf(stderr, "roapproxy run: %v\n", err)
		return 1
	}
	return 0
}
