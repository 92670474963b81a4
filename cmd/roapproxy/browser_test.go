package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBrowserUIOverDemo drives the web UI in Chromium over the real `roapproxy demo`: simulated
// peers sending through the proxy, verified live, plus one hostile exchange sent through the
// same proxy. The browser suite is web/e2e/demo.test.mjs.
func TestBrowserUIOverDemo(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "web", "e2e"))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		missing = append(missing, "/usr/bin/chromium")
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		missing = append(missing, "web/e2e/node_modules (run: cd web/e2e && npm ci)")
	}
	if len(missing) > 0 {
		msg := "browser tests need: " + strings.Join(missing, ", ")
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if testing.Short() {
		t.Skip("browser tests are not short")
	}

	_, errOut, stop := startCommand(t, "demo", []string{"--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0", "--quiet", "--bits", "1024",
		"--rate", "4", "--config-dir", filepath.Join(t.TempDir(), "ca")}, regexp.MustCompile(`web UI +http://\S+`))
	defer stop()
	ui := regexp.MustCompile(`web UI +(http://\S+)`).FindStringSubmatch(errOut.String())[1]
	proxy := regexp.MustCompile(`proxy +(http://\S+)`).FindStringSubmatch(errOut.String())[1]

	// A hostile peer behind the proxy: markup in its URL, headers and XML.
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/vnd.oma.drm.roap-pdu+xml")
		w.Header().Set("X-Evil", "<img src=x onerror=window.__pwned=2>")
		io.WriteString(w, `<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success"><nonce>AAAAAAAAAAAAAAAAAAAAAA==</nonce><domainID><![CDATA[<script>window.__pwned=1</script>]]></domainID></roap:leaveDomainResponse>`)
	}))
	defer hostile.Close()
	pu, _ := url.Parse(proxy)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	resp, err := c.Post(hostile.URL+"/pwned/%3Cscript%3Ewindow.__pwned=3%3C%2Fscript%3E", "application/vnd.oma.drm.roap-pdu+xml",
		strings.NewReader(`<roap:leaveDomainRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0"><deviceID onerror="window.__pwned=4">x</deviceID></roap:leaveDomainRequest>`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-concurrency=1", "--test-reporter=spec", "demo.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ROAPPROXY_UI_URL="+strings.TrimSuffix(ui, "/"), "ROAPPROXY_UI_FEED=demo")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("browser tests over the demo failed (%v):\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "pass 5") && !strings.Contains(out.String(), "pass 6") {
		t.Fatalf("expected the demo browser tests to pass, not skip:\n%s", out.String())
	}
	t.Logf("browser tests over the demo:\n%s", out.String())
}
