package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/roapproxy/roapproxy/decode"
)

func init() {
	register(command{
		name:    "rules",
		summary: "list the catalogue of findings (rule IDs, severities, spec references)",
		run:     runRules,
	})
}

// regenerateRulesDoc is the command that writes docs/rules.md; tests and the document itself
// quote it, so it lives in one place.
const regenerateRulesDoc = "go run ./cmd/roapproxy rules --markdown > docs/rules.md"

func runRules(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("rules", "rules [--markdown]", "Lists every rule a finding can carry: its stable ID, default severity, what it checks and\nwhere the reference says so.")
	markdown := fs.Bool("markdown", false, "print the catalogue as the Markdown of docs/rules.md")
	if ok, code := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "roapproxy rules: unexpected argument %q\n", sanitize(fs.Arg(0)))
		return 2
	}
	var out string
	if *markdown {
		out = rulesMarkdown(decode.Rules())
	} else {
		out = rulesText(decode.Rules())
	}
	if _, err := io.WriteString(stdout, out); err != nil {
		fmt.Fprintf(stderr, "roapproxy rules: %v\n", err)
		return 2
	}
	return 0
}

// byPackage splits the catalogue (already sorted by package, then ID) into runs per package.
func byPackage(rules []decode.Rule) [][]decode.Rule {
	var groups [][]decode.Rule
	for i, r := range rules {
		if i == 0 || r.Package != rules[i-1].Package {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], r)
	}
	return groups
}

func rulesText(rules []decode.Rule) string {
	var b strings.Builder
	idW := 0
	for _, r := range rules {
		idW = max(idW, utf8.RuneCountInString(r.ID))
	}
	for i, g := range byPackage(rules) {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s (%d rules)\n", g[0].Package, len(g))
		for _, r := range g {
			fmt.Fprintf(&b, "  %-*s  %-7s  %s [%s]\n", idW, r.ID, r.Severity, r.Check, r.Ref)
		}
	}
	return b.String()
}

func rulesMarkdown(rules []decode.Rule) string {
	var b strings.Builder
	b.WriteString("# Rule catalogue\n\n")
	fmt.Fprintf(&b, "Every finding roapproxy reports names one of these rules; this file is generated from the code by `%s` and a test fails when it is out of date, so do not edit it by hand.\n", regenerateRulesDoc)
	b.WriteString("\nSeverity: **error** where the reference says MUST or SHALL, **warning** for SHOULD or an inferred expectation, **info** for a tolerated deviation. A rule may report a finding with another severity when the context changes its weight; the table gives the default.\n")
	for _, g := range byPackage(rules) {
		fmt.Fprintf(&b, "\n## Package `%s`\n\n", g[0].Package)
		b.WriteString("| ID | severity | check | reference |\n|---|---|---|---|\n")
		for _, r := range g {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.ID, r.Severity, mdCell(r.Check), mdCell(r.Ref))
		}
	}
	return b.String()
}

// mdCell keeps a value inside one table cell and literal: a pipe would end the cell, a newline
// the row, <name> would vanish as an HTML tag and paired asterisks (ocspResponse*) would turn
// into emphasis.
var mdCell = strings.NewReplacer(
	"\\", "\\\\",
	"|", "\\|",
	"*", "\\*",
	"<", "&lt;",
	">", "&gt;",
	"&", "&amp;",
	"\r\n", " ",
	"\n", " ",
).Replace
