package intercept

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
)

// ConsoleOptions configure the live terminal view.
type ConsoleOptions struct {
	JSON  bool // one JSON event per line instead of the human view
	Color bool // ANSI colours (only when writing to a terminal)
	Store *captures.Store
}

// Console prints one line per flow as flows complete (and one per late finding) until ctx is
// done. It reads the bus like any other observer: when the terminal cannot keep up it is cut
// off, says how many lines it skipped, and resumes, rather than slowing the proxy.
func Console(ctx context.Context, w io.Writer, o ConsoleOptions) {
	bus := o.Store.Bus()
	since := bus.Last()
	for {
		sub, backlog, complete := bus.Subscribe(since, 4096, nil)
		if !complete {
			fmt.Fprintf(w, "… some flows were not shown (terminal too slow); see the UI or the recording\n")
		}
		for _, e := range backlog {
			printEvent(w, e, o)
			since = e.Seq
		}
		if !drain(ctx, sub, func(e captures.Event) { printEvent(w, e, o); since = e.Seq }) {
			return
		}
	}
}

// drain delivers events until the subscription is cut off (true: resubscribe) or ctx ends
// (false).
func drain(ctx context.Context, sub *captures.Sub, fn func(captures.Event)) bool {
	for {
		select {
		case <-ctx.Done():
			sub.Close()
			return false
		case e, ok := <-sub.C:
			if !ok {
				return true
			}
			fn(e)
		}
	}
}

func printEvent(w io.Writer, e captures.Event, o ConsoleOptions) {
	if o.JSON {
		b, _ := json.Marshal(e)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	switch e.Type {
	case captures.EventFlow:
		fmt.Fprintln(w, FormatSummary(e.Flow, o.Color, o.Store))
	case captures.EventFindings:
		for _, f := range e.Findings {
			fmt.Fprintf(w, "%s  #%d late %s %s: %s\n", strings.Repeat(" ", 12), e.FlowID, sevWord(f.Severity, o.Color), Clean(f.Rule), Clean(f.Message))
		}
	case captures.EventClear:
		fmt.Fprintln(w, "— cleared —")
	}
}

func sevWord(s decode.Severity, color bool) string {
	word := map[decode.Severity]string{decode.SevError: "ERROR", decode.SevWarning: "WARN ", decode.SevInfo: "info "}[s]
	if word == "" {
		word = "ok   "
	}
	if !color {
		return word
	}
	code := map[decode.Severity]string{decode.SevError: "31;1", decode.SevWarning: "33", decode.SevInfo: "36"}[s]
	if code == "" {
		code = "32"
	}
	return "\x1b[" + code + "m" + word + "\x1b[0m"
}

// FormatSummary is the one-line view of a flow: time, leg, kind(s), protocol status, verdict
// and the worst finding.
func FormatSummary(s *captures.Summary, color bool, store *captures.Store) string {
	kind := s.ReqKind
	if s.RespKind != "" {
		if kind != "" {
			kind += " → "
		}
		kind += s.RespKind
	}
	if kind == "" {
		kind = s.Method + " " + s.Path
	}
	if s.Variant != "" {
		kind += " (" + s.Variant + ")"
	}
	status := s.Status
	if status == "" {
		status = fmt.Sprint(s.StatusCode)
	}
	line := fmt.Sprintf("%s %-9s %-52s %-22s %s", s.Time.Format("15:04:05.000"), s.Leg, Clean(kind), Clean(status), sevWord(s.Verdict, color))
	if worst := worstFinding(s, store); worst != nil {
		line += " " + Clean(worst.Rule) + ": " + Clean(worst.Message)
	}
	if s.Error != "" {
		line += " " + Clean(s.Error)
	}
	return line
}

func worstFinding(s *captures.Summary, store *captures.Store) *decode.Finding {
	if store == nil || s.Verdict == "" {
		return nil
	}
	f, ok := store.Get(s.ID)
	if !ok {
		return nil
	}
	var worst *decode.Finding
	for _, x := range f.AllFindings() {
		if worst == nil || x.Severity.Rank() > worst.Severity.Rank() {
			x := x
			worst = &x
		}
	}
	return worst
}

// Clean makes hostile text safe for a terminal: control characters (escape sequences could
// rewrite the screen or the title) become visible escapes, and long values are cut.
func Clean(s string) string {
	const max = 200
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n >= max {
			b.WriteString("…")
			break
		}
		n++
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069):
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
