package intercept

import (
	"context"
	"crypto/tls"
	"html/template"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/elazarl/goproxy"
)

// CAHost is the well-known host name that, requested through the forward proxy, serves the CA
// certificate and installation instructions (as mitm.it does for mitmproxy). It never reaches
// the network.
const CAHost = "roapproxy.ca"

// ForwardOptions configure the forward proxy.
type ForwardOptions struct {
	CA *CA // nil: CONNECT is tunnelled without interception
	// Passthrough lists hosts (exact, or ".suffix" for a domain and its subdomains) whose
	// CONNECT tunnels are not intercepted: their bytes pass untouched.
	Passthrough []string
}

func (o ForwardOptions) passthrough(host string) bool {
	h := strings.ToLower(host)
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	for _, p := range o.Passthrough {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if h == p || (strings.HasPrefix(p, ".") && (strings.HasSuffix(h, p) || h == p[1:])) {
			return true
		}
	}
	return false
}

// NewForward returns a forward-proxy handler: absolute-form HTTP requests and CONNECT tunnels
// (intercepted with the CA unless the host is listed to pass through).
func NewForward(p *Pipeline, o ForwardOptions) http.Handler {
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = log.New(io.Discard, "", 0)
	// goproxy reads HTTPS_PROXY from the environment for tunnels; a debugging proxy must not.
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	gp.ConnectDial = nil
	gp.ConnectDialWithReq = func(req *http.Request, network, addr string) (net.Conn, error) {
		return dialer.DialContext(req.Context(), network, addr)
	}
	gp.Tr = &http.Transport{Proxy: nil, DialContext: dialer.DialContext}
	gp.NonproxyHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "" && strings.EqualFold(stripPortOf(r.Host), CAHost) && o.CA != nil {
			o.CA.ServeHTTP(w, r)
			return
		}
		http.Error(w, "roapproxy: this is a proxy; send absolute-form requests (configure it as the HTTP proxy), or use a reverse listener", http.StatusBadRequest)
	})
	if o.CA != nil {
		gp.CertStore = o.CA
		tlsFor := func(host string, _ *goproxy.ProxyCtx) (*tls.Config, error) {
			leaf, err := o.CA.Leaf(host)
			if err != nil {
				return nil, err
			}
			return &tls.Config{Certificates: []tls.Certificate{*leaf}, MinVersion: tls.VersionTLS10}, nil
		}
		gp.OnRequest().HandleConnectFunc(func(host string, _ *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
			if o.passthrough(host) {
				return goproxy.OkConnect, host
			}
			return &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: tlsFor}, host
		})
	}
	gp.OnRequest().DoFunc(func(r *http.Request, _ *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		if strings.EqualFold(stripPortOf(r.URL.Host), CAHost) && o.CA != nil {
			return r, o.CA.response(r)
		}
		mode := "forward"
		if r.URL.Scheme == "https" {
			mode = "mitm"
		}
		// Doing the round trip here, not in goproxy, means an upstream failure becomes a 502
		// the client can read instead of a silently closed connection.
		return r, p.RoundTrip(r, mode)
	})
	return gp
}

func stripPortOf(h string) string {
	if hh, _, err := net.SplitHostPort(h); err == nil {
		return hh
	}
	return h
}

var caPage = template.Must(template.New("ca").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>roapproxy CA</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem}code{background:#eee;padding:0 .2em}</style>
</head><body>
<h1>roapproxy interception CA</h1>
<p>Install this certificate on a <strong>test</strong> device so roapproxy can decode its HTTPS traffic to Rights Issuers.
Never install it on a device you use for anything else.</p>
<p><a href="/roapproxy-ca.crt">Download for Android (DER, .crt)</a> · <a href="/roapproxy-ca.pem">Download PEM</a></p>
<p>SHA-256 fingerprint: <code>{{.}}</code></p>
<h2>Android test devices</h2>
<ol>
<li>Set the Wi-Fi network's proxy to this machine's address and roapproxy's listen port.</li>
<li>Open <code>http://roapproxy.ca/</code> in the device browser and download the .crt file.</li>
<li>Settings → Security → Encryption &amp; credentials → Install a certificate → CA certificate; pick the file.</li>
<li>Android 7 and later trust user CAs only in apps that opt in (network security config with
<code>&lt;certificates src="user"/&gt;</code>) or on debug builds; DRM agents in the system image need the certificate
in the system store (<code>/system/etc/security/cacerts</code>, root required) on a test build.</li>
</ol>
<p>Compare the fingerprint above with <code>roapproxy ca show</code> on the proxy machine before trusting it.</p>
</body></html>`))

// ServeHTTP serves the CA page and downloads.
func (c *CA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	resp := c.response(r)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (c *CA) response(r *http.Request) *http.Response {
	h := http.Header{"Cache-Control": {"no-store"}, "X-Content-Type-Options": {"nosniff"}}
	var body string
	status := http.StatusOK
	switch r.URL.Path {
	case "/roapproxy-ca.pem":
		h.Set("Content-Type", "application/x-pem-file")
		body = string(c.PEM())
	case "/roapproxy-ca.crt", "/roapproxy-ca.cer":
		h.Set("Content-Type", "application/x-x509-ca-cert")
		body = string(c.Cert.Raw)
	case "/", "":
		var sb strings.Builder
		_ = caPage.Execute(&sb, c.Fingerprint())
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		body = sb.String()
	default:
		status = http.StatusNotFound
		h.Set("Content-Type", "text/plain; charset=utf-8")
		body = "not found\n"
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: int64(len(body)), Body: io.NopCloser(strings.NewReader(body)), Request: r}
}

// Server is what Serve runs: an *http.Server, or a *Reverse listener's engine.
type Server interface {
	Serve(l net.Listener) error
	Shutdown(ctx context.Context) error
}

var (
	_ Server = (*http.Server)(nil)
	_ Server = (*Reverse)(nil)
)

// Serve runs srv on l until ctx is cancelled, then shuts it down gracefully, giving in-flight
// exchanges up to grace to finish.
func Serve(ctx context.Context, srv Server, l net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		err := srv.Shutdown(sctx)
		<-errc
		return err
	}
}
