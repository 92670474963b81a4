package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/intercept"
	"github.com/roapproxy/roapproxy/web"
)

// version is stamped into HAR exports and the UI.
var version = "dev"

// listFlag is a repeatable string flag that also splits on commas.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// proxyOptions are the settings shared by run and demo; the JSON names are the config file's.
type proxyOptions struct {
	Listen           string        `json:"listen"`
	Reverse          listFlag      `json:"reverse"`
	UI               string        `json:"ui"`
	UIToken          string        `json:"uiToken"`
	ConfigDir        string        `json:"configDir"`
	Passthrough      listFlag      `json:"passthrough"`
	NoIntercept      bool          `json:"noIntercept"`
	Trust            listFlag      `json:"trust"`
	Keys             string        `json:"keys"`
	NoVerify         bool          `json:"noVerify"`
	JSON             bool          `json:"json"`
	Quiet            bool          `json:"quiet"`
	Record           string        `json:"record"`
	MaxBody          int64         `json:"maxBody"`
	Timeout          time.Duration `json:"timeout"`
	UpstreamInsecure bool          `json:"upstreamInsecure"`
	UpstreamCA       string        `json:"upstreamCA"`
	MaxFlows         int           `json:"maxFlows"`
	MemoryLimit      int64         `json:"memoryLimit"`
	AnalysisNice     int           `json:"analysisNice"`
	configFile       string
}

func (o *proxyOptions) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "forward proxy listen `address` (HTTP, and HTTPS through CONNECT); empty disables it")
	fs.Var(&o.Reverse, "reverse", "reverse listener `ADDR=URL`: requests to ADDR go to the upstream URL (repeatable)")
	fs.StringVar(&o.UI, "ui", "127.0.0.1:8081", "web UI listen `address`; empty disables it")
	fs.StringVar(&o.UIToken, "ui-token", "", "access `token` for the UI (generated when the UI listens beyond loopback)")
	fs.StringVar(&o.ConfigDir, "config-dir", intercept.DefaultConfigDir(), "`folder` holding the interception CA")
	fs.Var(&o.Passthrough, "passthrough", "`hosts` whose HTTPS is tunnelled without interception (repeatable, comma-separated; .example.com matches subdomains)")
	fs.BoolVar(&o.NoIntercept, "no-intercept", false, "tunnel every CONNECT without interception")
	fs.Var(&o.Trust, "trust", "trust anchors: PEM `file or folder` (repeatable)")
	fs.StringVar(&o.Keys, "keys", "", "SCE MAC keys `file` (see docs/sce-mac.md)")
	fs.BoolVar(&o.NoVerify, "no-verify", false, "decode only: skip signature, chain, OCSP and cross-message verification")
	fs.BoolVar(&o.JSON, "json", false, "print events as JSON lines instead of the live view")
	fs.BoolVar(&o.Quiet, "quiet", false, "print nothing per flow")
	fs.StringVar(&o.Record, "record", "", "append every flow to this JSON-lines `file`")
	fs.Int64Var(&o.MaxBody, "max-body", 0, "largest body in `bytes` that is decoded and captured (default: the decoder's 4 MiB)")
	fs.DurationVar(&o.Timeout, "timeout", 60*time.Second, "upstream exchange timeout")
	fs.BoolVar(&o.UpstreamInsecure, "upstream-insecure", false, "accept any upstream TLS certificate (test RIs)")
	fs.StringVar(&o.UpstreamCA, "upstream-ca", "", "PEM `file` of CAs trusted for upstream TLS (instead of the system roots)")
	fs.IntVar(&o.MaxFlows, "max-flows", 20000, "flows kept in memory")
	fs.Int64Var(&o.MemoryLimit, "memory-limit", 80<<20, "soft limit in `bytes` for the Go heap, so memory stays flat under sustained load (0: the runtime's defaults; GOMEMLIMIT in the environment wins)")
	fs.IntVar(&o.AnalysisNice, "analysis-nice", 19, "CPU `nice` value (0 to 19) of the thread that verifies, on Linux, so forwarding and the peers on this machine come first; 0: the process's own priority")
	fs.StringVar(&o.configFile, "config", "", "JSON config `file` with the same settings (flags given on the command line win)")
}

// loadConfigFile applies the JSON config file named by --config in args, if any. Call it after
// addFlags (which set the defaults) and before parsing the flags (which then win over the file).
func (o *proxyOptions) loadConfigFile(args []string) error {
	path := ""
	for i, a := range args {
		switch {
		case a == "--config" || a == "-config":
			if i+1 < len(args) {
				path = args[i+1]
			}
		case strings.HasPrefix(a, "--config="), strings.HasPrefix(a, "-config="):
			path = a[strings.Index(a, "=")+1:]
		}
	}
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(o); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// judgeFactory builds the verifier for the proxy; it is set by the verification wiring
// (verify.go in this package). nil means decode only.
var judgeFactory func(o *proxyOptions) (intercept.Judge, error)

// running is a started proxy.
type running struct {
	Store    *captures.Store
	Pipeline *intercept.Pipeline
	CA       *intercept.CA
	Judge    intercept.Judge // nil with --no-verify
	ProxyURL string          // forward proxy URL ("" when disabled)
	UIURL    string          // UI URL including the token ("" when disabled)
	Reverse  map[string]string
	recorder *captures.Recorder
	wg       sync.WaitGroup
	errs     chan error
}

// startProxy binds every listener first (so a port in use fails at once, before anything
// runs), then serves them until ctx is cancelled.
func startProxy(ctx context.Context, o *proxyOptions, stdout, stderr io.Writer) (*running, error) {
	if o.AnalysisNice < 0 || o.AnalysisNice > 19 {
		return nil, fmt.Errorf("--analysis-nice %d: want 0 to 19 (raising the priority is not the proxy's business)", o.AnalysisNice)
	}
	r := &running{Reverse: map[string]string{}, errs: make(chan error, 8)}
	// The capture store and the caches are bounded well below this; the limit makes the
	// collector work harder as the heap nears it instead of letting a busy proxy double its
	// footprint between collections. An operator's GOMEMLIMIT wins.
	if o.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(o.MemoryLimit)
	}
	r.Store = captures.NewStore(captures.StoreOptions{MaxFlows: o.MaxFlows}, captures.NewBus(8192))
	if o.Record != "" {
		f, err := os.OpenFile(o.Record, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		r.recorder = captures.NewRecorder(f, 8192)
		r.Store.SetRecorder(r.recorder)
	}
	tlsOpts := &intercept.TLSOptions{Insecure: o.UpstreamInsecure}
	if o.UpstreamCA != "" {
		pemBytes, err := os.ReadFile(o.UpstreamCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("%s: no PEM certificates", o.UpstreamCA)
		}
		tlsOpts.RootCAs = pool
	}
	var judge intercept.Judge
	if !o.NoVerify && judgeFactory != nil {
		j, err := judgeFactory(o)
		if err != nil {
			return nil, err
		}
		judge = j
		r.Judge = j
	}
	r.Pipeline = intercept.NewPipeline(intercept.Config{
		Store: r.Store, Judge: judge, MaxBody: o.MaxBody, Timeout: o.Timeout, AnalysisNice: o.AnalysisNice,
		Decoder:   decode.NewDecoder(decode.DefaultLimits),
		Transport: intercept.NewTransport(intercept.TransportOptions{TLS: tlsOpts}),
	})

	type srv struct {
		l net.Listener
		s intercept.Server
	}
	handler := func(h http.Handler) intercept.Server {
		return &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, ErrorLog: nil}
	}
	var servers []srv
	fail := func(err error) (*running, error) {
		for _, s := range servers {
			s.l.Close()
		}
		r.Pipeline.Close()
		return nil, err
	}
	if o.Listen != "" {
		if !o.NoIntercept {
			ca, created, err := intercept.LoadOrCreateCA(o.ConfigDir)
			if err != nil {
				return fail(fmt.Errorf("interception CA in %s: %w", o.ConfigDir, err))
			}
			r.CA = ca
			if created {
				fmt.Fprintf(stderr, "created the interception CA in %s (SHA-256 %s)\n", o.ConfigDir, ca.Fingerprint())
			}
		}
		l, err := net.Listen("tcp", o.Listen)
		if err != nil {
			return fail(err)
		}
		servers = append(servers, srv{l, handler(intercept.NewForward(r.Pipeline, intercept.ForwardOptions{CA: r.CA, Passthrough: o.Passthrough}))})
		r.ProxyURL = "http://" + l.Addr().String()
	}
	for _, spec := range o.Reverse {
		addr, target, ok := strings.Cut(spec, "=")
		u, err := url.Parse(target)
		if !ok || err != nil || u.Scheme == "" || u.Host == "" {
			return fail(fmt.Errorf("--reverse %q: want ADDR=URL, for example 127.0.0.1:9001=http://ri.example:8080", spec))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fail(err)
		}
		servers = append(servers, srv{l, intercept.NewReverse(r.Pipeline, u, intercept.ReverseOptions{TLS: tlsOpts})})
		r.Reverse["http://"+l.Addr().String()] = u.String()
	}
	if o.UI != "" {
		l, h, u, err := listenUI(o.UI, o.UIToken, r.Store)
		if err != nil {
			return fail(err)
		}
		servers = append(servers, srv{l, handler(h)})
		r.UIURL = u
	}
	for _, s := range servers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := intercept.Serve(ctx, s.s, s.l, 5*time.Second); err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.errs <- err
			}
		}()
	}
	if !o.Quiet {
		color := isTerminal(stdout) && os.Getenv("NO_COLOR") == ""
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			intercept.Console(ctx, stdout, intercept.ConsoleOptions{JSON: o.JSON, Color: color, Store: r.Store})
		}()
	}
	return r, nil
}

// listenUI listens for the web UI on addr over store. A token is generated when none is given
// and the address reaches beyond loopback; the URL returned carries it.
func listenUI(addr, token string, store *captures.Store) (net.Listener, http.Handler, string, error) {
	if token == "" && web.NeedsToken(addr) {
		token = web.NewToken()
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, "", err
	}
	u := "http://" + l.Addr().String() + "/"
	if token != "" {
		u += "?token=" + token
	}
	return l, web.New(web.Options{Store: store, Token: token, Version: version}), u, nil
}

// describe prints where everything listens.
func (r *running) describe(w io.Writer) {
	if r.ProxyURL != "" {
		fmt.Fprintf(w, "proxy      %s  (set it as the device's HTTP proxy; CA at http://%s/)\n", r.ProxyURL, intercept.CAHost)
	}
	for l, u := range r.Reverse {
		fmt.Fprintf(w, "reverse    %s → %s\n", l, u)
	}
	if r.UIURL != "" {
		fmt.Fprintf(w, "web UI     %s\n", r.UIURL)
	}
}

// wait blocks until ctx is done and every server has shut down; it returns the first serve
// error, if any.
func (r *running) wait() error {
	r.wg.Wait()
	r.Pipeline.Close()
	var err error
	if r.recorder != nil {
		err = r.recorder.Close()
	}
	select {
	case e := <-r.errs:
		return e
	default:
		return err
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
