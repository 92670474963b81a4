package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/intercept"
	"github.com/roapproxy/roapproxy/sim"
)

// recordFaultyLeave runs the seed 000 user-domain leave through a verifying proxy that records,
// with an RI that forwards Success although the DEA refused. It returns the recording, a file
// with the PKI's root, and the rule IDs the live proxy found per flow ID.
func recordFaultyLeave(t *testing.T) (recording, rootFile string, live map[uint64][]string) {
	t.Helper()
	dir := t.TempDir()
	p, err := sim.NewPKI(sim.PKIOptions{Bits: 1024})
	if err != nil {
		t.Fatal(err)
	}
	rootFile = filepath.Join(dir, "root.pem")
	if err := os.WriteFile(rootFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Root.Cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	recording = filepath.Join(dir, "session.jsonl")
	rf, err := os.Create(recording)
	if err != nil {
		t.Fatal(err)
	}
	rec := captures.NewRecorder(rf, 8192)
	store := captures.NewStore(captures.StoreOptions{}, captures.NewBus(8192))
	store.SetRecorder(rec)
	judge, err := judgeFactory(&proxyOptions{Trust: listFlag{rootFile}})
	if err != nil {
		t.Fatal(err)
	}
	pl := intercept.NewPipeline(intercept.Config{Store: store, Judge: judge})
	fwd := httptest.NewServer(intercept.NewForward(pl, intercept.ForwardOptions{}))
	s, err := sim.Start(sim.Options{PKI: p, Proxy: fwd.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, ri := range s.RIs {
		ri.SetFaults(sim.RIFaults{ForwardWrongStatus: true})
	}
	s.DEA.SetFaults(sim.DEAFaults{WrongStatus: "InvalidDomain"})
	for _, sc := range s.Scenarios() {
		if sc.Name == sim.ScRegister || sc.Name == sim.ScLeaveUserDomain {
			_ = s.Run(context.Background(), sc) // the agent may notice the fault too
		}
	}
	s.Close()
	fwd.Close()
	pl.Close()
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	rf.Close()
	live = map[uint64][]string{}
	for _, f := range store.Snapshot() {
		live[f.ID] = []string{}
		for _, x := range f.AllFindings() {
			live[f.ID] = append(live[f.ID], x.Rule)
		}
		slices.Sort(live[f.ID])
	}
	if len(live) < 5 {
		t.Fatalf("only %d flows recorded", len(live))
	}
	return recording, rootFile, live
}

func TestOpenReanalysesARecordingAsTheProxyDid(t *testing.T) {
	recording, root, live := recordFaultyLeave(t)

	var out, errOut bytes.Buffer
	code := dispatch(context.Background(), []string{"open", "--ui", "", "--json", "--trust", root, recording}, &out, &errOut)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (the recording holds error findings):\n%s", code, errOut.String())
	}
	var sums []captures.Summary
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var s captures.Summary
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		sums = append(sums, s)
	}
	if len(sums) != len(live) {
		t.Fatalf("%d flows opened, %d recorded", len(sums), len(live))
	}
	sawEcho := false
	for _, s := range sums {
		got := slices.Clone(s.Findings)
		slices.Sort(got)
		want := slices.Compact(slices.Clone(live[s.ID]))
		// Opening reports the same findings on every flow as the live proxy did (the end of the
		// recording may add what never came, which the live proxy was still waiting for).
		for _, r := range want {
			if !slices.Contains(got, r) {
				t.Errorf("flow %d %s: live found %s, open did not (open: %v)", s.ID, s.ReqKind, r, got)
			}
		}
		sawEcho = sawEcho || slices.Contains(got, "DOM-7.5.3.2-STATUS-ECHO")
	}
	if !sawEcho {
		t.Error("the cross-leg finding DOM-7.5.3.2-STATUS-ECHO was not found again")
	}
	if !strings.Contains(errOut.String(), "errors") {
		t.Errorf("no totals on stderr: %s", errOut.String())
	}

	// Without trust, the same recording opens with other findings: verification is redone now,
	// not copied from the file.
	out.Reset()
	errOut.Reset()
	dispatch(context.Background(), []string{"open", "--ui", "", "--json", recording}, &out, &errOut)
	if !strings.Contains(out.String(), `"CHAIN-NOANCHORS"`) {
		t.Errorf("without --trust no CHAIN-NOANCHORS:\n%s", out.String())
	}
}

func TestOpenServesTheUIAndSurvivesACutRecording(t *testing.T) {
	recording, root, live := recordFaultyLeave(t)
	// A proxy killed mid-write leaves half a line.
	f, err := os.OpenFile(recording, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id":999,"mode":"rev`)
	f.Close()

	_, errOut, stop := startCommand(t, "open", []string{"--ui", "127.0.0.1:0", "--trust", root, recording}, regexp.MustCompile(`web UI +http://\S+`))
	if !strings.Contains(errOut.String(), "using the") {
		t.Errorf("the cut line was not reported:\n%s", errOut.String())
	}
	ui := regexp.MustCompile(`web UI +(http://\S+)`).FindStringSubmatch(errOut.String())[1]
	r, err := http.Get(ui + "api/flows?limit=5000")
	if err != nil {
		t.Fatal(err)
	}
	var page captures.Page
	json.NewDecoder(r.Body).Decode(&page)
	r.Body.Close()
	if page.Total != len(live) {
		t.Fatalf("the UI lists %d flows, the recording holds %d", page.Total, len(live))
	}
	r, err = http.Get(ui + "api/flows?q=DOM-7.5.3.2-STATUS-ECHO")
	if err != nil {
		t.Fatal(err)
	}
	page = captures.Page{}
	json.NewDecoder(r.Body).Decode(&page)
	r.Body.Close()
	if page.Total == 0 {
		t.Error("the UI's filter finds no flow with the cross-leg finding")
	}
	if code := stop(); code != 0 {
		t.Fatalf("open exit %d:\n%s", code, errOut.String())
	}
}

func TestOpenUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := dispatch(context.Background(), []string{"open", "--ui", ""}, &out, &errOut); code != 2 {
		t.Errorf("no file: exit %d", code)
	}
	if code := dispatch(context.Background(), []string{"open", "--ui", "", filepath.Join(t.TempDir(), "missing.jsonl")}, &out, &errOut); code != 1 {
		t.Errorf("missing file: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte("not json\n"), 0o600)
	errOut.Reset()
	if code := dispatch(context.Background(), []string{"open", "--ui", "", bad}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "bad.jsonl") {
		t.Errorf("garbage: exit %d, %s", code, errOut.String())
	}
}

func TestOpenTwoRecordingsKeepEveryFlow(t *testing.T) {
	recording, root, live := recordFaultyLeave(t)
	var out, errOut bytes.Buffer
	dispatch(context.Background(), []string{"open", "--ui", "", "--json", "--trust", root, recording, recording}, &out, &errOut)
	ids := map[uint64]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var s captures.Summary
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatal(err)
		}
		if ids[s.ID] {
			t.Fatalf("flow ID %d twice", s.ID)
		}
		ids[s.ID] = true
	}
	if len(ids) != 2*len(live) {
		t.Fatalf("%d flows from two copies of a %d-flow recording", len(ids), len(live))
	}
}
