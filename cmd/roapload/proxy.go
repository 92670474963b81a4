package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildProxy compiles cmd/roapproxy of the module that contains the working directory.
func buildProxy(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the roapproxy module: run from the repository, or pass --bin")
	}
	bin := filepath.Join(dir, "roapproxy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/roapproxy")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/roapproxy: %v\n%s", err, b)
	}
	return bin, nil
}

// freeAddr returns a loopback address with a port nobody listens on right now. The port is
// released before the proxy binds it; on a busy machine another process could take it in
// between, which then shows as a bind error of the proxy rather than a wrong measurement.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	return addr, nil
}

// proxyProc is a running proxy subprocess (roapproxy, or the null proxy) with one reverse listener.
type proxyProc struct {
	cmd     *exec.Cmd
	Reverse string // http://ADDR of the reverse listener
	UI      string // UI URL, "" when off
	out     *capBuf
	done    chan struct{}
	waitErr error
}

// capBuf keeps the first 64 KiB of the proxy's output for error messages.
type capBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *capBuf) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := 64<<10 - c.b.Len(); room > 0 {
		if len(p) > room {
			c.b.Write(p[:room])
		} else {
			c.b.Write(p)
		}
	}
	return len(p), nil
}

func (c *capBuf) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

// proxyConfig says how to start the proxy.
type proxyConfig struct {
	Bin      string
	Upstream string // http://host:port
	Verify   bool
	TrustPEM string // file with the trust anchors (Verify only)
	UI       bool   // listen for the web UI on a loopback port
	// Null runs this program as a plain net/http/httputil reverse proxy instead of roapproxy:
	// the cost of a proxy process and its extra hop with no capture, decoding or verification.
	Null bool
	// Relay runs this program as a TCP relay that copies bytes both ways without parsing them:
	// the least any process that must see the traffic can cost (two sockets, a read and a
	// write per segment each way).
	Relay   bool
	WorkDir string   // --config-dir, so the run never touches the user's folder
	Extra   []string // more flags for roapproxy run (--proxy-flag)
}

func (pc proxyConfig) args(reverse, ui string) []string {
	a := []string{"run", "--listen", "", "--ui", ui, "--quiet", "--config-dir", pc.WorkDir,
		"--reverse", reverse + "=" + pc.Upstream}
	if pc.Verify {
		a = append(a, "--trust", pc.TrustPEM)
	} else {
		a = append(a, "--no-verify")
	}
	return append(a, pc.Extra...)
}

// startProxy starts the proxy and waits until its reverse listener accepts connections.
func startProxy(pc proxyConfig) (*proxyProc, error) {
	reverse, err := freeAddr()
	if err != nil {
		return nil, err
	}
	ui := ""
	if pc.UI {
		if ui, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	p := &proxyProc{out: &capBuf{}, done: make(chan struct{}), Reverse: "http://" + reverse}
	if ui != "" {
		p.UI = "http://" + ui + "/"
	}
	if pc.Null || pc.Relay {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		p.cmd = exec.Command(self)
		mode := nullProxyEnv + "=1"
		if pc.Relay {
			mode = relayEnv + "=1"
		}
		p.cmd.Env = append(os.Environ(), mode, nullListenEnv+"="+reverse, nullUpstreamEnv+"="+pc.Upstream)
	} else {
		p.cmd = exec.Command(pc.Bin, pc.args(reverse, ui)...)
		p.cmd.Env = os.Environ()
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", p.cmd.Path, err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	if err := p.waitReady(20*time.Second, reverse, ui); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

func (p *proxyProc) waitReady(timeout time.Duration, addrs ...string) error {
	deadline := time.Now().Add(timeout)
	for _, addr := range addrs {
		if addr == "" {
			continue
		}
		for {
			select {
			case <-p.done:
				return fmt.Errorf("the proxy exited before listening (%v):\n%s", p.waitErr, p.out.String())
			default:
			}
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the proxy did not listen on %s within %v:\n%s", addr, timeout, p.out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// Pid is the proxy's process ID.
func (p *proxyProc) Pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and requires a clean exit (status 0) within 15 s.
func (p *proxyProc) stop() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("SIGTERM: %w", err)
		}
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.kill()
		return fmt.Errorf("the proxy did not exit within 15 s of SIGTERM:\n%s", p.out.String())
	}
	if p.waitErr != nil {
		return fmt.Errorf("the proxy exited with %v after SIGTERM:\n%s", p.waitErr, p.out.String())
	}
	return nil
}

func (p *proxyProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// The null proxy runs when this program starts with nullProxyEnv set (the tool re-executes
// itself, so the null proxy is a process of its own, measured like roapproxy).
const (
	nullProxyEnv    = "ROAPLOAD_NULL_PROXY"
	nullListenEnv   = "ROAPLOAD_NULL_LISTEN"
	nullUpstreamEnv = "ROAPLOAD_NULL_UPSTREAM"
	relayEnv        = "ROAPLOAD_RELAY"
)

// floorSetup reads a floor process's upstream and listens on its address; on failure it
// reports under name and returns a nil listener and the exit status.
func floorSetup(name string) (*url.URL, net.Listener, int) {
	target, err := url.Parse(os.Getenv(nullUpstreamEnv))
	if err != nil || target.Host == "" {
		fmt.Fprintf(os.Stderr, "%s: bad upstream %q\n", name, os.Getenv(nullUpstreamEnv))
		return nil, nil, 2
	}
	l, err := net.Listen("tcp", os.Getenv(nullListenEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return nil, nil, 1
	}
	return target, l, 0
}

// runNullProxy serves a reverse proxy with net/http/httputil until SIGTERM, configured like
// roapproxy's upstream transport (keep-alive pool, no compression, no environment proxy).
func runNullProxy() int {
	target, l, code := floorSetup("null proxy")
	if l == nil {
		return code
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
			// Buffer the request as roapproxy must (it decodes whole bodies), so the floor
			// differs from roapproxy only by what roapproxy does with the bytes.
			if body, err := io.ReadAll(r.In.Body); err == nil {
				r.Out.Body, r.Out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			}
		},
		Transport: &http.Transport{Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 64,
			IdleConnTimeout: 90 * time.Second, DisableCompression: true},
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 30 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "null proxy: %v\n", err)
		return 1
	}
	return 0
}

// runRelay relays each accepted connection to its own upstream connection, copying bytes
// through a user-space buffer in both directions until SIGTERM. It knows nothing of HTTP, so
// it holds no pool: the load tool's clients keep their connections alive, which makes one
// upstream connection per client connection the same reuse a pool would give.
func runRelay() int {
	target, l, code := floorSetup("relay")
	if l == nil {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			fmt.Fprintf(os.Stderr, "relay: %v\n", err)
			return 1
		}
		go relayConn(c.(*net.TCPConn), target.Host)
	}
}

func relayConn(c *net.TCPConn, upstream string) {
	defer c.Close()
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{})
	go func() { copyPlain(u, c); u.(*net.TCPConn).CloseWrite(); close(done) }()
	copyPlain(c, u)
	c.CloseWrite()
	<-done
}

// copyPlain copies with read and write on a buffer. io.Copy would splice(2) between the two
// sockets and never bring the bytes into the process, which a proxy that reads them cannot do.
func copyPlain(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
