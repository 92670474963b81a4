package web

// The browser harness: real UI servers on loopback over captures stores, and the node test suite
// in web/e2e driving a real Chromium against them. The harness takes any store; TestBrowserUI
// feeds its stores with the synthetic traffic of feed_test.go.

import (
	"bytes"
	"context"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/captures"
)

const chromiumPath = "/usr/bin/chromium"

// e2eDir returns web/e2e when everything the browser suite needs is installed. Otherwise the
// test is skipped, except under CI=true, where a missing tool is a failure: CI must run it.
func e2eDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("e2e")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	if _, err := os.Stat(chromiumPath); err != nil {
		missing = append(missing, chromiumPath)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		missing = append(missing, "web/e2e/node_modules (run: cd web/e2e && npm ci)")
	}
	if len(missing) > 0 {
		msg := "browser UI tests need: " + strings.Join(missing, ", ")
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

// serveUI starts the UI over store on a loopback httptest server and returns its URL.
func serveUI(t *testing.T, store *captures.Store) string {
	t.Helper()
	srv := httptest.NewServer(New(Options{Store: store, Version: "e2e"}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// runBrowserSuite runs `node --test` over web/e2e with env added and fails with the suite's
// output when any browser test fails. The suite reads ROAPPROXY_UI_URL (a server with live
// traffic, required), ROAPPROXY_UI_BIG_URL (a server holding 50,000 flows; its test skips
// without it), ROAPPROXY_UI_FEED=synthetic (the live store is fed by feedSynthetic, so the tests
// that look for its fixtures run) and ROAPPROXY_SCREENSHOT=1 (write docs/ui.png).
func runBrowserSuite(t *testing.T, dir string, env map[string]string) {
	t.Helper()
	// go test caches a pass by the files the test itself opens and the environment it reads: read
	// the suite's files and the variables node sees, so editing a test or asking for the
	// screenshot runs it again.
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || (d.IsDir() && d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			_, _ = os.ReadFile(p)
		}
		return nil
	})
	_ = os.Getenv("ROAPPROXY_SCREENSHOT")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-concurrency=1", "--test-reporter=spec", dir+string(filepath.Separator))
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		t.Fatalf("browser tests failed (%v):\n%s", err, out.String())
	}
	t.Logf("browser tests:\n%s", out.String())
}

// TestBrowserUI drives the UI in Chromium over two servers: one with live synthetic traffic
// (including the seed 000 exchange and a hostile flow), one pre-filled with 50,000 flows.
func TestBrowserUI(t *testing.T) {
	dir := e2eDir(t)
	v := loadFeedVectors(t)

	live := captures.NewStore(captures.StoreOptions{}, captures.NewBus(4096))
	ensureFixtures(live, v, time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		feedSynthetic(ctx, live, v, 300*time.Millisecond)
	}()
	t.Cleanup(func() { cancel(); <-done })

	big := captures.NewStore(captures.StoreOptions{MaxFlows: 60_000, MaxBytes: 1 << 30}, captures.NewBus(1024))
	fillStore(big, 50_000)

	liveURL, bigURL := serveUI(t, live), serveUI(t, big)
	if addr := os.Getenv("ROAPPROXY_UI_DEV"); addr != "" {
		devServe(t, addr, live)
		return
	}
	runBrowserSuite(t, dir, map[string]string{"ROAPPROXY_UI_URL": liveURL, "ROAPPROXY_UI_BIG_URL": bigURL, "ROAPPROXY_UI_FEED": "synthetic"})
}

// devServe is for working on the UI: with ROAPPROXY_UI_DEV=127.0.0.1:8089 the test serves the
// live store there until killed, reading web/static from disk so edits show on reload.
func devServe(t *testing.T, addr string, store *captures.Store) {
	api := New(Options{Store: store, Version: "dev"})
	disk := http.FileServer(http.Dir("static"))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/static/") {
			w.Header().Set("Content-Security-Policy", csp)
			w.Header().Set("Cache-Control", "no-store")
			if r.URL.Path == "/" {
				http.ServeFile(w, r, filepath.Join("static", "index.html"))
				return
			}
			http.StripPrefix("/static", disk).ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
	t.Logf("UI dev server on http://%s", addr)
	if err := http.ListenAndServe(addr, h); err != nil {
		t.Fatal(err)
	}
}
