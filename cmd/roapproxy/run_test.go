package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
)

// syncBuffer is a bytes.Buffer safe for the command's goroutines and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startCommand runs a long-lived subcommand in-process and waits until stderr matches ready.
func startCommand(t *testing.T, name string, args []string, ready *regexp.Regexp) (out, errOut *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut = &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- dispatch(ctx, append([]string{name}, args...), out, errOut) }()
	deadline := time.Now().Add(10 * time.Second)
	for !ready.MatchString(errOut.String()) {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("%s exited early with %d:\n%s", name, code, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("%s not ready:\n%s", name, errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	code := 0
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(15 * time.Second):
				t.Fatal("command did not shut down after cancellation")
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return out, errOut, stop
}

func TestRunReverseFlowShowsInUIAndShutsDown(t *testing.T) {
	const body = `<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="DomainAccessDenied"></roap:leaveDomainResponse>`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", decode.MIMEPDU)
		io.WriteString(w, body)
	}))
	defer up.Close()
	cfg := filepath.Join(t.TempDir(), "cfg.json")
	// The config file sets the reverse listener; flags set the rest.
	os.WriteFile(cfg, []byte(fmt.Sprintf(`{"reverse": ["127.0.0.1:0=%s"], "maxFlows": 50}`, up.URL)), 0o600)
	out, errOut, stop := startCommand(t, "run", []string{"--config", cfg, "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0",
		"--config-dir", filepath.Join(t.TempDir(), "ca")}, regexp.MustCompile(`web UI +http://\S+`))
	rev := regexp.MustCompile(`reverse +(http://\S+)`).FindStringSubmatch(errOut.String())
	ui := regexp.MustCompile(`web UI +(http://\S+)`).FindStringSubmatch(errOut.String())
	if rev == nil || !strings.Contains(errOut.String(), "proxy      http://127.0.0.1:") {
		t.Fatalf("listeners not described:\n%s", errOut.String())
	}
	resp, err := http.Post(rev[1]+"/roap", decode.MIMEPDU, strings.NewReader("<x/>"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != body {
		t.Fatalf("through the reverse listener: %q", got)
	}
	var page captures.Page
	deadline := time.Now().Add(5 * time.Second)
	for page.Total == 0 && time.Now().Before(deadline) {
		r, err := http.Get(ui[1] + "api/flows")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(r.Body).Decode(&page)
		r.Body.Close()
		time.Sleep(20 * time.Millisecond)
	}
	if page.Total != 1 || page.Flows[0].RespKind != "leaveDomainResponse" || page.Flows[0].Verdict != decode.SevError {
		t.Fatalf("UI API page %+v", page)
	}
	// The live view printed the flow with its worst finding.
	for !strings.Contains(out.String(), "DOM-7.5-DAD-SCOPE") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "leaveDomainResponse") || !strings.Contains(out.String(), "DOM-7.5-DAD-SCOPE") {
		t.Fatalf("live view:\n%s", out.String())
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d after SIGINT-equivalent:\n%s", code, errOut.String())
	}
}

func TestRunRejectsBadReverseAndPortInUse(t *testing.T) {
	var out, errOut bytes.Buffer
	code := dispatch(context.Background(), []string{"run", "--listen", "", "--ui", "", "--reverse", "nonsense"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "ADDR=URL") {
		t.Fatalf("bad --reverse: exit %d %q", code, errOut.String())
	}
	errOut.Reset()
	code = dispatch(context.Background(), []string{"run", "--listen", "", "--ui", "", "--analysis-nice", "-5"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "--analysis-nice -5: want 0 to 19") {
		t.Fatalf("negative --analysis-nice: exit %d %q", code, errOut.String())
	}
	_, errOut2, _ := startCommand(t, "run", []string{"--listen", "127.0.0.1:0", "--ui", "", "--no-intercept"}, regexp.MustCompile(`proxy +http://\S+`))
	addr := strings.TrimPrefix(regexp.MustCompile(`proxy +(http://\S+)`).FindStringSubmatch(errOut2.String())[1], "http://")
	errOut.Reset()
	if code := dispatch(context.Background(), []string{"run", "--listen", addr, "--ui", "", "--no-intercept"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "address already in use") {
		t.Fatalf("port in use: exit %d %q", code, errOut.String())
	}
}

func TestCACommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	var out, errOut bytes.Buffer
	if code := dispatch(context.Background(), []string{"ca", "show", "--config-dir", dir}, &out, &errOut); code != 1 {
		t.Fatalf("show without a CA: %d", code)
	}
	if code := dispatch(context.Background(), []string{"ca", "init", "--config-dir", dir}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "created") {
		t.Fatalf("init: %d %s %s", code, out.String(), errOut.String())
	}
	st, _ := os.Stat(filepath.Join(dir, "roapproxy-ca.key"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", st.Mode().Perm())
	}
	out.Reset()
	dispatch(context.Background(), []string{"ca", "export", "--config-dir", dir}, &out, &errOut)
	if !strings.HasPrefix(out.String(), "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("export: %q", out.String())
	}
	der := filepath.Join(t.TempDir(), "ca.crt")
	if code := dispatch(context.Background(), []string{"ca", "export", "--der", "--out", der, "--config-dir", dir}, &out, &errOut); code != 0 {
		t.Fatal("export --der")
	}
	if b, _ := os.ReadFile(der); len(b) == 0 || b[0] != 0x30 {
		t.Fatal("DER export is not DER")
	}
	if code := dispatch(context.Background(), []string{"ca", "frobnicate"}, &out, &errOut); code != 2 {
		t.Fatalf("unknown subcommand: %d", code)
	}
}
