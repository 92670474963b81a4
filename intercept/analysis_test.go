package intercept

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
)

// A judge on a lowered priority can get almost no CPU on a machine other work keeps busy.
// Forwarding must then not crawl at whatever rate the judge gets: once the queue is long, a
// goroutine at the process's priority takes the judging over. Here the judge never runs at
// all until the end, and more exchanges pass than the queue has room for.
func TestAStarvedJudgeIsTakenOverAndForwardingGoesOn(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", decode.MIMEPDU)
		io.WriteString(w, ldResp)
	}))
	t.Cleanup(up.Close)
	target, _ := url.Parse(up.URL)
	gate := make(chan struct{})
	store := captures.NewStore(captures.StoreOptions{MaxFlows: 4000, MaxBytes: 1 << 30}, captures.NewBus(64))
	p := NewPipeline(Config{Store: store, AnalysisNice: 7, judgeGate: gate})
	t.Cleanup(func() { p.Close() })
	t.Cleanup(func() { close(gate) }) // runs first: the judge must be free to see Close
	rev := startReverse(t, p, target)

	// Three steps per exchange: 2,000 exchanges are 6,000 steps, beyond the 4,096 the queue holds.
	const n = 2000
	if 3*n <= analysisQueue {
		t.Fatalf("%d exchanges fit in the queue: the test would prove nothing", n)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range n {
		resp, err := client.Post(rev.URL+"/roap", decode.MIMEPDU, strings.NewReader(ldResp))
		if err != nil {
			t.Fatalf("exchange %d: %v (forwarding waited for the starved judge)", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// What came after the last long queue waits at most two ticks: a judge that applied
	// nothing for a whole tick is taken over too.
	deadline := time.Now().Add(10 * time.Second)
	for store.Len() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d flows stored while the judge was starved", store.Len(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Judged in the order they passed, across the hand-overs.
	snap := store.Snapshot()
	for i := 1; i < len(snap); i++ {
		if snap[i].ID <= snap[i-1].ID {
			t.Fatalf("flow %d stored after flow %d", snap[i].ID, snap[i-1].ID)
		}
	}
	if got := fmt.Sprint(snap[0].ID); got != "1" {
		t.Errorf("first flow stored is %s", got)
	}
}
