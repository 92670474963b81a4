package intercept

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/captures"
)

// threadNices returns the nice value of each of this process's threads.
func threadNices(t *testing.T) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended meanwhile
		}
		// The command name, in parentheses, may hold spaces; the fields after it are plain.
		// proc(5): nice is field 19, the 17th after the name.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 16 {
			out = append(out, fields[16])
		}
	}
	return out
}

func TestTheJudgeRunsAtTheAnalysisPriority(t *testing.T) {
	count := func(nice string) int {
		n := 0
		for _, v := range threadNices(t) {
			if v == nice {
				n++
			}
		}
		return n
	}
	if count("7") != 0 {
		t.Skip("a thread of the test binary already runs at nice 7")
	}
	before := map[string]bool{}
	for _, v := range threadNices(t) {
		before[v] = true
	}
	store := captures.NewStore(captures.StoreOptions{}, nil)
	p := NewPipeline(Config{Store: store, AnalysisNice: 7})
	defer p.Close()
	deadline := time.Now().Add(5 * time.Second)
	for count("7") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no thread at nice 7, exactly one wanted: %v", threadNices(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Forwarding keeps the process's priority: only the judge's thread was lowered.
	for _, v := range threadNices(t) {
		if v != "7" && !before[v] {
			t.Fatalf("a thread at nice %s: %v", v, threadNices(t))
		}
	}
}
