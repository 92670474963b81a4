package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/intercept"
)

func init() {
	register(command{
		name:    "open",
		summary: "open recordings (run --record) again: decoded and verified anew, in the web UI or as lines",
		run:     runOpen,
	})
}

const openAbout = `Loads recordings written by "roapproxy run --record FILE" (JSON lines), analyses every message
again in the order it passed the proxy, with the trust anchors and keys given now, and serves the
web UI on the result until interrupted, as a packet analyser opens a capture file. Nothing is
proxied. With --ui "" it prints one line per flow (or JSON lines with --json) and exits; the exit
status is then 1 when any flow has an error finding.`

// openMaxFlows bounds what one open holds: a recording of a long session can be large, and the
// UI's table stays smooth far beyond this.
const openMaxFlows = 200_000

func runOpen(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o proxyOptions
	fs := newFlagSet("open", "open [flags] RECORDING.jsonl...", openAbout)
	fs.StringVar(&o.UI, "ui", "127.0.0.1:8081", "web UI listen `address`; empty prints the flows and exits")
	fs.StringVar(&o.UIToken, "ui-token", "", "access `token` for the UI (generated when the UI listens beyond loopback)")
	fs.Var(&o.Trust, "trust", "trust anchors: PEM `file or folder` (repeatable)")
	fs.StringVar(&o.Keys, "keys", "", "SCE MAC keys `file` (see docs/sce-mac.md)")
	fs.BoolVar(&o.NoVerify, "no-verify", false, "decode only: skip signature, chain, OCSP and cross-message verification")
	fs.BoolVar(&o.JSON, "json", false, "with --ui \"\": print the flows as JSON lines (their summaries)")
	if ok, code := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "roapproxy open: name at least one recording (roapproxy run --record FILE writes one)")
		return 2
	}
	var flows []*captures.Flow
	seen := map[uint64]bool{}
	var top uint64
	for _, name := range fs.Args() {
		fl, err := readRecording(name)
		if err != nil && len(fl) == 0 {
			fmt.Fprintf(stderr, "roapproxy open: %v\n", err)
			return 1
		}
		if err != nil {
			// A proxy that was killed leaves a last line cut short: keep what came before it.
			fmt.Fprintf(stderr, "roapproxy open: %v; using the %d flows before it\n", err, len(fl))
		}
		// Recordings of different sessions both start at flow 1: a file whose IDs were taken
		// already is numbered on after the others, so every flow keeps its own address in the UI.
		var shift uint64
		for _, f := range fl {
			if seen[f.ID] {
				shift = top
				break
			}
		}
		for _, f := range fl {
			f.ID += shift
			seen[f.ID] = true
			top = max(top, f.ID)
		}
		flows = append(flows, fl...)
	}
	if len(flows) > openMaxFlows {
		fmt.Fprintf(stderr, "roapproxy open: %d flows; keeping the last %d\n", len(flows), openMaxFlows)
		flows = flows[len(flows)-openMaxFlows:]
	}
	var judge intercept.Judge
	if !o.NoVerify && judgeFactory != nil {
		j, err := judgeFactory(&o)
		if err != nil {
			fmt.Fprintf(stderr, "roapproxy open: %v\n", err)
			return 1
		}
		judge = j
	}
	// Everything the files hold stays: the store's bounds are the proxy's defaults only so a live
	// session keeps its memory flat.
	store := captures.NewStore(captures.StoreOptions{MaxFlows: max(len(flows), 1), MaxBytes: 1 << 40}, captures.NewBus(8192))
	n := intercept.Replay(flows, intercept.Config{Store: store, Judge: judge, Decoder: decode.NewDecoder(decode.DefaultLimits)})

	errs, warns := 0, 0
	for _, f := range store.Snapshot() {
		s := captures.Summarize(f)
		errs += s.Errors
		warns += s.Warnings
		switch {
		case o.UI != "":
		case o.JSON:
			b, _ := json.Marshal(s)
			fmt.Fprintf(stdout, "%s\n", b)
		default:
			fmt.Fprintln(stdout, intercept.FormatSummary(&s, false, store))
		}
	}
	if o.UI == "" {
		fmt.Fprintf(stderr, "%d flows: %d errors, %d warnings\n", n, errs, warns)
		if errs > 0 {
			return 1
		}
		return 0
	}

	l, h, u, err := listenUI(o.UI, o.UIToken, store)
	if err != nil {
		fmt.Fprintf(stderr, "roapproxy open: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "%d flows: %d errors, %d warnings\nweb UI     %s\n", n, errs, warns, u)
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	if err := intercept.Serve(ctx, hs, l, 5*time.Second); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "roapproxy open: %v\n", err)
		return 1
	}
	return 0
}

func readRecording(name string) ([]*captures.Flow, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	flows, err := captures.ReadRecords(f)
	if err != nil {
		return flows, fmt.Errorf("%s: %w", name, err)
	}
	return flows, nil
}
