package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/sim"
)

func init() {
	register(command{
		name:    "sim",
		summary: "run simulated DRM Agents, RIs, a DEA and an OCSP responder on loopback (or write the test PKI)",
		run:     runSim,
	})
}

const simAbout = `Starts an OCSP responder, two Rights Issuers (both proxying the user domain
ACMEUSERDOM42001 to the DEA), a Domain Enforcement Agent and one DRM Agent per test device, all on
127.0.0.1, and runs the agents through every scenario (registration, RO acquisition 1- and 2-pass,
domains, proxied user-domain leaves, DEA-initiated leaves, tokens) until interrupted.

  roapproxy sim [--rate N] [--proxy URL]          loop until Ctrl-C
  roapproxy sim --once --out DIR [--proxy URL]    every scenario once; every message to DIR
  roapproxy sim pki --out DIR [--bits N] [--sha1] write a test PKI as PEM files

With --proxy every HTTP request of every simulated peer goes through that HTTP proxy (for
example roapproxy run), so the proxy sees all four legs: device-RI, RI-DEA, DEA-RI, RI-OCSP.`

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "pki" {
		return runSimPKI(args[1:], stdout, stderr)
	}
	fs := newFlagSet("sim", "sim [--rate N] [--proxy URL] [--once --out DIR] [--pki DIR]", simAbout)
	rate := fs.Float64("rate", 1, "scenarios per second in the loop")
	proxy := fs.String("proxy", "", "HTTP proxy URL for every request the simulated peers send")
	once := fs.Bool("once", false, "run every scenario once and exit")
	out := fs.String("out", "", "with --once: directory for the messages (NNNN-<kind>.xml), an index and the PKI")
	pkiDir := fs.String("pki", "", "use the PKI in this directory (written by 'sim pki') instead of a fresh one")
	bits := fs.Int("bits", 2048, "RSA key size of a fresh PKI (1024 or 2048)")
	sha1 := fs.Bool("sha1", false, "sign the fresh PKI's certificates with SHA-1, as fielded DRM PKIs do")
	mac := fs.String("mac", "hmac-sha1", "RDP MAC algorithm: hmac-sha1 or hmac-sha256")
	verbose := fs.Bool("v", false, "print the peers' log lines")
	if ok, code := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "roapproxy sim: unexpected argument %q\n", sanitize(fs.Arg(0)))
		return 2
	}
	if *out != "" && !*once {
		fmt.Fprintln(stderr, "roapproxy sim: --out goes with --once")
		return 2
	}
	if *rate <= 0 {
		fmt.Fprintln(stderr, "roapproxy sim: --rate must be positive")
		return 2
	}
	opts := sim.Options{Proxy: *proxy}
	switch *mac {
	case "hmac-sha1":
		opts.MAC = sim.HMACSHA1
	case "hmac-sha256":
		opts.MAC = sim.HMACSHA256
	default:
		fmt.Fprintf(stderr, "roapproxy sim: --mac %q: want hmac-sha1 or hmac-sha256\n", sanitize(*mac))
		return 2
	}
	var logMu sync.Mutex
	if *verbose {
		opts.Log = func(line string) {
			logMu.Lock()
			defer logMu.Unlock()
			fmt.Fprintln(stderr, line)
		}
	}
	var err error
	if *pkiDir != "" {
		opts.PKI, err = sim.LoadPKI(*pkiDir)
	} else {
		opts.PKI, err = sim.NewPKI(sim.PKIOptions{Bits: *bits, SHA1: *sha1})
	}
	if err != nil {
		fmt.Fprintf(stderr, "roapproxy sim: %v\n", err)
		return 1
	}
	s, err := sim.Start(opts)
	if err != nil {
		fmt.Fprintf(stderr, "roapproxy sim: %v\n", err)
		return 1
	}
	defer s.Close()
	printPeers(stdout, s)

	if *once {
		return simOnce(ctx, s, *out, stdout, stderr)
	}
	fmt.Fprintf(stdout, "running scenarios at %g per second; Ctrl-C stops\n", *rate)
	var failures int
	s.Loop(ctx, *rate, func(name string, err error) {
		logMu.Lock()
		defer logMu.Unlock()
		if err != nil {
			failures++
			fmt.Fprintf(stdout, "%s  FAIL %v\n", time.Now().Format("15:04:05"), err)
			return
		}
		fmt.Fprintf(stdout, "%s  ok   %s\n", time.Now().Format("15:04:05"), name)
	})
	if failures > 0 {
		return 1
	}
	return 0
}

func printPeers(w io.Writer, s *sim.Sim) {
	fmt.Fprintf(w, "%-9s %s/  (stale responses under /stale/)\n", "ocsp", s.URL(sim.PeerOCSP))
	fmt.Fprintf(w, "%-9s %s/rdp  (DEA ID %s)\n", "dea", s.URL(sim.PeerDEA), s.DEA.ID())
	for _, ri := range s.RIs {
		fmt.Fprintf(w, "%-9s %s  (/roap /token /token-report /push /rdp; RI ID %s)\n", ri.Name(), s.URL(ri.Name()), ri.ID())
	}
	for _, a := range s.Agents {
		fmt.Fprintf(w, "%-9s agent, device ID %s\n", a.Name(), a.ID())
	}
}

// simMessage is one body as it went over the wire, placed in time.
type simMessage struct {
	at       time.Time
	seq      int64
	request  bool
	ex       sim.Exchange
	body     []byte
	ct       string
	answered string // for a response: the kind of its request
}

func simOnce(ctx context.Context, s *sim.Sim, out string, stdout, stderr io.Writer) int {
	var mu sync.Mutex
	var exs []sim.Exchange
	runErr := s.RunOnce(ctx, func(ex sim.Exchange) {
		mu.Lock()
		defer mu.Unlock()
		exs = append(exs, ex)
	})
	if runErr != nil {
		fmt.Fprintf(stderr, "roapproxy sim: %v\n", runErr)
	}
	msgs := orderMessages(exs)
	if out != "" {
		if err := writeMessages(out, s, msgs); err != nil {
			fmt.Fprintf(stderr, "roapproxy sim: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %d messages and the PKI to %s\n", len(msgs), out)
	} else {
		fmt.Fprintf(stdout, "%d exchanges, %d messages\n", len(exs), len(msgs))
	}
	if runErr != nil {
		return 1
	}
	return 0
}

// orderMessages lists every non-empty body in the order it was sent: a request when its
// exchange started, a response when it ended. Nested exchanges (an RI asking the DEA while the
// device waits) thus sit between the device's request and the RI's answer.
func orderMessages(exs []sim.Exchange) []simMessage {
	var msgs []simMessage
	for _, ex := range exs {
		var reqKind string
		if len(ex.Request) > 0 {
			m := simMessage{at: ex.Start, seq: ex.Seq, request: true, ex: ex, body: ex.Request, ct: ex.RequestType}
			reqKind = decode.Decode(ex.Request, decode.Hint{ContentType: ex.RequestType, Direction: decode.DirRequest}).Kind
			msgs = append(msgs, m)
		}
		if len(ex.Response) > 0 {
			msgs = append(msgs, simMessage{at: ex.Start.Add(ex.Duration), seq: ex.Seq, ex: ex, body: ex.Response,
				ct: ex.ResponseType, answered: reqKind})
		}
	}
	sort.SliceStable(msgs, func(i, j int) bool {
		if !msgs[i].at.Equal(msgs[j].at) {
			return msgs[i].at.Before(msgs[j].at)
		}
		return msgs[i].seq < msgs[j].seq
	})
	return msgs
}

func writeMessages(dir string, s *sim.Sim, msgs []simMessage) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var index strings.Builder
	for i, m := range msgs {
		name := fmt.Sprintf("%04d-%s", i+1, messageKind(m))
		if err := os.WriteFile(filepath.Join(dir, name), m.body, 0o644); err != nil {
			return err
		}
		dir := "response"
		if m.request {
			dir = "request "
		}
		fmt.Fprintf(&index, "%s\t%s\t%s\t%s %s\t%s\t%s\n", name, m.ex.Scenario, m.ex.Leg, m.ex.Method, m.ex.URL, dir, m.ct)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.tsv"), []byte(index.String()), 0o644); err != nil {
		return err
	}
	return s.PKI.Write(filepath.Join(dir, "pki"))
}

// messageKind names a message file: the decoded kind (and variant) for DRM messages, the OCSP
// direction for OCSP bodies.
func messageKind(m simMessage) string {
	switch m.ct {
	case sim.CTOCSPReq:
		return "ocsp-request.der"
	case sim.CTOCSPRes:
		return "ocsp-response.der"
	}
	h := decode.Hint{ContentType: m.ct, Direction: decode.DirRequest}
	if !m.request {
		h = decode.Hint{ContentType: m.ct, Direction: decode.DirResponse, Answers: m.answered, Pushed: m.answered == ""}
	}
	dm := decode.Decode(m.body, h)
	kind := dm.Kind
	if dm.Variant != "" {
		kind += "-" + dm.Variant
	}
	kind = strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, kind)
	if dm.Root == nil {
		return kind + ".bin"
	}
	return kind + ".xml"
}

func runSimPKI(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("sim pki", "sim pki --out DIR [--bits 1024|2048] [--sha1]", "Writes a fresh test PKI (root, CA, RIs, devices, SCE device, DEA, OCSP responder) as PEM files.")
	out := fs.String("out", "", "directory to write (required)")
	bits := fs.Int("bits", 2048, "RSA key size: 1024 or 2048")
	sha1 := fs.Bool("sha1", false, "sign certificates with SHA-1")
	if ok, code := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "roapproxy sim pki: --out DIR is required and no other argument is taken")
		return 2
	}
	if *bits != 1024 && *bits != 2048 {
		fmt.Fprintf(stderr, "roapproxy sim pki: --bits %d: want 1024 or 2048\n", *bits)
		return 2
	}
	p, err := sim.NewPKI(sim.PKIOptions{Bits: *bits, SHA1: *sha1})
	if err == nil {
		err = p.Write(*out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "roapproxy sim pki: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %d identities to %s\n", len(p.Identities()), *out)
	return 0
}
