package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/sim"
)

func TestDemoOnceFlowsReachTheUIClean(t *testing.T) {
	_, errOut, stop := startCommand(t, "demo", []string{"--once", "--bits", "1024", "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0",
		"--quiet", "--config-dir", filepath.Join(t.TempDir(), "ca")}, regexp.MustCompile(`every scenario ran once`))
	if strings.Contains(errOut.String(), "failed") {
		t.Fatalf("a scenario failed:\n%s", errOut.String())
	}
	ui := regexp.MustCompile(`web UI +(http://\S+)`).FindStringSubmatch(errOut.String())[1]
	var page captures.Page
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := http.Get(ui + "api/flows?limit=5000")
		if err != nil {
			t.Fatal(err)
		}
		page = captures.Page{}
		json.NewDecoder(r.Body).Decode(&page)
		r.Body.Close()
		if page.Total > 60 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	kinds := map[string]bool{}
	for _, f := range page.Flows {
		kinds[f.ReqKind] = true
		kinds[f.RespKind] = true
		if f.Verdict == decode.SevError || f.Verdict == decode.SevWarning {
			t.Errorf("flow %d %s→%s verdict %s: %v", f.ID, f.ReqKind, f.RespKind, f.Verdict, f.Findings)
		}
	}
	for _, k := range []string{"registrationRequest", "roResponse", "leaveDomainRequest", "rdpProxyLeaveUserDomainRequest",
		"drmTrigger", "TokenDeliveryResponse", "tokenConsumptionReport", "ocspResponse"} {
		if !kinds[k] {
			t.Errorf("no %s flow in the demo's traffic (%d flows)", k, page.Total)
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("demo exit %d:\n%s", code, errOut.String())
	}
}

func TestSimOnceWritesTheWireInOrder(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := dispatch(context.Background(), []string{"sim", "--once", "--out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("sim --once: exit %d\n%s", code, stderr.String())
	}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) < 50 || !strings.HasPrefix(names[0], "0001-") {
		t.Fatalf("files: %v", names)
	}
	b, err := os.ReadFile(filepath.Join(out, names[0]))
	if err != nil || decode.Decode(b, decode.Hint{}).Kind == "unknown" {
		t.Fatalf("first file does not decode: %v", err)
	}
	st, err := os.Stat(filepath.Join(out, "pki", "ri-1.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("PKI key file: %v %v", err, st)
	}
	// The capture inspects as one clean conversation against the PKI's root.
	stdout.Reset()
	if code := dispatch(context.Background(), []string{"inspect", "--trust", filepath.Join(out, "pki", "root.pem"), out}, &stdout, &stderr); code != 0 {
		t.Fatalf("inspect of the capture: exit %d\n%s", code, stdout.String())
	}
}

func TestSimPKICommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pki")
	var stdout, stderr bytes.Buffer
	if code := dispatch(context.Background(), []string{"sim", "pki", "--out", out, "--bits", "1024", "--sha1"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	keys, _ := filepath.Glob(filepath.Join(out, "*.key"))
	if len(keys) < 5 {
		t.Fatalf("keys: %v", keys)
	}
	for _, k := range keys {
		if st, _ := os.Stat(k); st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v", k, st.Mode().Perm())
		}
	}
	if code := dispatch(context.Background(), []string{"sim", "pki", "--out", out, "--bits", "512"}, &stdout, &stderr); code != 2 {
		t.Fatalf("--bits 512: exit %d", code)
	}
}

// A conversation's open expectations are reported when it ends: here the DEA never sends the
// fan-out trigger that seed 000 §7.5 requires after a successful proxy leave.
func TestInspectReportsWhatNeverCame(t *testing.T) {
	p, err := sim.NewPKI(sim.PKIOptions{Bits: 1024})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.Start(sim.Options{PKI: p})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.DEA.SetFaults(sim.DEAFaults{SkipFanout: true})
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	// The scenario notices the missing trigger too and fails; the capture is written anyway.
	simOnce(context.Background(), s, out, &stdout, &stderr)
	if files, _ := filepath.Glob(filepath.Join(out, "*-rdpProxyLeaveUserDomainResponse*.xml")); len(files) == 0 {
		t.Fatalf("the capture holds no proxy leave: %s", stderr.String())
	}
	stdout.Reset()
	code := dispatch(context.Background(), []string{"inspect", "--trust", filepath.Join(out, "pki", "root.pem"), out}, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "DOM-7.5-FANOUT") {
		t.Fatalf("exit %d; want 0 (a warning) with DOM-7.5-FANOUT:\n%s", code, stdout.String())
	}
}
