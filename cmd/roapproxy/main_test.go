package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/roapproxy/roapproxy/decode"
)

func dispatchT(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := dispatch(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestDispatchUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		toStdout bool
	}{
		{nil, 2, false},
		{[]string{"frobnicate"}, 2, false},
		{[]string{"help", "frobnicate"}, 2, false},
		{[]string{"help"}, 0, true},
		{[]string{"-h"}, 0, true},
		{[]string{"--help"}, 0, true},
	} {
		code, out, errs := dispatchT(tc.args...)
		usage := errs
		if tc.toStdout {
			usage = out
		}
		if code != tc.code || !strings.Contains(usage, "Usage:") || !strings.Contains(usage, "inspect") || !strings.Contains(usage, "rules") {
			t.Errorf("%q: exit %d (want %d), stdout %q, stderr %q", tc.args, code, tc.code, out, errs)
		}
	}
	if _, _, errs := dispatchT("frob\x1b[2J"); strings.Contains(errs, "\x1b") {
		t.Errorf("unknown command echoed raw: %q", errs)
	}
}

func TestDispatchRunsCommand(t *testing.T) {
	var got []string
	register(command{name: "zz-test", summary: "test", run: func(_ context.Context, args []string, stdout, _ io.Writer) int {
		got = args
		io.WriteString(stdout, "ran")
		return 7
	}})
	t.Cleanup(func() { delete(commands, "zz-test") })
	code, out, _ := dispatchT("zz-test", "a", "-b")
	if code != 7 || out != "ran" || strings.Join(got, " ") != "a -b" {
		t.Errorf("exit %d, out %q, args %q", code, out, got)
	}
	code, out, _ = dispatchT("help", "inspect")
	if code != 0 || !strings.Contains(out, "Usage: roapproxy inspect") {
		t.Errorf("help inspect: exit %d, %q", code, out)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a command twice did not panic")
		}
	}()
	register(command{name: "zz-test", run: func(context.Context, []string, io.Writer, io.Writer) int { return 0 }})
}

func TestRulesDocUpToDate(t *testing.T) {
	root, _ := moduleRoot(t)
	path := filepath.Join(root, "docs", "rules.md")
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; generate it with: %s", err, regenerateRulesDoc)
	}
	want := rulesMarkdown(decode.Rules())
	if string(have) != want {
		t.Fatalf("docs/rules.md is out of date with the rule catalogue in the code; regenerate it from the module root with:\n\n\t%s\n\n%s", regenerateRulesDoc, firstDiff(string(have), want))
	}
}

// firstDiff names the first line where two texts part, so the failure says which rule drifted.
func firstDiff(have, want string) string {
	h, w := strings.Split(have, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(h), len(w)); i++ {
		var hl, wl string
		if i < len(h) {
			hl = h[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if hl != wl {
			return "first difference at line " + strconv.Itoa(i+1) + ":\n  file: " + hl + "\n  code: " + wl
		}
	}
	return ""
}

func TestRulesMarkdown(t *testing.T) {
	rules := []decode.Rule{
		{ID: "A-1", Severity: decode.SevError, Check: "uses <tag> | pipes and ocspResponse* or x*", Ref: "spec §1", Package: "decode"},
		{ID: "B-1", Severity: decode.SevInfo, Check: "line\nbreak", Ref: "", Package: "verify"},
	}
	md := rulesMarkdown(rules)
	for _, want := range []string{
		"# Rule catalogue\n",
		regenerateRulesDoc,
		"## Package `decode`\n\n| ID | severity | check | reference |\n|---|---|---|---|\n",
		"| `A-1` | error | uses &lt;tag&gt; \\| pipes and ocspResponse\\* or x\\* | spec §1 |\n",
		"## Package `verify`",
		"| `B-1` | info | line break |  |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// Every table row has exactly five unescaped pipes (four columns).
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| `") {
			if n := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|"); n != 5 {
				t.Errorf("row has %d cell separators: %s", n, line)
			}
		}
	}

	// The command prints the real catalogue.
	var out, errb bytes.Buffer
	if code := runRules(context.Background(), []string{"--markdown"}, &out, &errb); code != 0 {
		t.Fatalf("rules --markdown: exit %d %s", code, errb.String())
	}
	if out.String() != rulesMarkdown(decode.Rules()) || !strings.Contains(out.String(), "`"+decode.RuleMalformed.ID+"`") {
		t.Error("rules --markdown does not print the catalogue")
	}
	out.Reset()
	if code := runRules(context.Background(), nil, &out, &errb); code != 0 || !strings.Contains(out.String(), decode.RuleMalformed.ID) {
		t.Errorf("rules: exit %d, %q", code, out.String())
	}
	if code := runRules(context.Background(), []string{"extra"}, &out, &errb); code != 2 {
		t.Errorf("rules extra: exit %d, want 2", code)
	}
}
