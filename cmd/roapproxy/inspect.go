package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/roapproxy/roapproxy/decode"
)

func init() {
	register(command{
		name:    "inspect",
		summary: "decode DRM messages from files and report what is wrong with them",
		run:     runInspect,
	})
}

const inspectAbout = `Decodes each FILE (- reads standard input) as one HTTP body: a ROAP PDU, ROAP trigger, SCE/RDP
message, drmTrigger or token message. Prints the kind, sender, status, identifying values and every
finding, including those of embedded messages.

Exit status: 0 when no finding has severity error, 1 when one does, 2 on a usage or I/O error.`

// inspectOption lets another file of this package add flags and per-message stages to inspect
// without editing this file (verification adds --trust, --keys and --at this way). It is called
// with the command's flag set before parsing and returns a function that runs after parsing,
// which may validate its flags (an error is a usage error, exit 2) and append stages.
type inspectOption func(fs *flag.FlagSet) func(in *inspector) error

// inspectOptions is appended to by init functions only.
var inspectOptions []inspectOption

// inspectStage runs on each decoded file, in the order the files were given (so a stage may
// remember earlier messages, as cross-message checks must), after decoding and before printing.
// It adds findings to r.Msg or its nested messages.
type inspectStage func(ctx context.Context, r *inspected)

// inspected is one input file and what became of it.
type inspected struct {
	File string // as given on the command line ("-" for standard input)
	Body []byte
	Msg  *decode.Message
}

// inspector holds one run of the inspect command: its options, its stages and where it writes.
type inspector struct {
	jsonOut     bool
	contentType string // forced content type; "" means guess from each body
	pushed      bool
	fields      bool // human output: also print the field tree

	stages []inspectStage
	// finishers run once after every file has gone through the stages, before printing (the
	// end of the conversation: expectations still open are reported then).
	finishers []func()

	stdin          io.Reader
	stdout, stderr io.Writer
	color          bool
}

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return inspectMain(ctx, args, os.Stdin, stdout, stderr)
}

// inspectMain is runInspect with standard input as a parameter, so tests can feed it.
func inspectMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	in := &inspector{stdin: stdin, stdout: stdout, stderr: stderr, color: colorWanted(stdout)}
	fs := newFlagSet("inspect", "inspect [flags] FILE...", inspectAbout)
	fs.BoolVar(&in.jsonOut, "json", false, "print one JSON array with an object per file instead of text")
	fs.StringVar(&in.contentType, "content-type", "", "decode every file as this `Content-Type` instead of guessing it from the body")
	fs.BoolVar(&in.pushed, "pushed", false, "the bodies arrived without a request (WAP push, 1-pass messages)")
	fs.BoolVar(&in.fields, "fields", false, "also print the field tree (text output; JSON always has it)")
	var after []func(*inspector) error
	for _, opt := range inspectOptions {
		if f := opt(fs); f != nil {
			after = append(after, f)
		}
	}
	if ok, code := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, "roapproxy inspect: no FILE given (use - for standard input)\n\n")
		fs.SetOutput(stderr)
		fs.Usage()
		return 2
	}
	for _, f := range after {
		if err := f(in); err != nil {
			fmt.Fprintf(stderr, "roapproxy inspect: %v\n", err)
			return 2
		}
	}
	files, err := expandArgs(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "roapproxy inspect: %s\n", sanitize(err.Error()))
		return 2
	}
	return in.run(ctx, files)
}

// expandArgs replaces each folder argument by the regular files in it, in name order (a capture
// written by `roapproxy sim --once --out DIR` is numbered, so name order is wire order).
func expandArgs(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if a == "-" || err != nil || !st.IsDir() {
			out = append(out, a) // run reports unreadable files itself
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, err
		}
		n := len(out)
		for _, e := range entries { // ReadDir sorts by name
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") && !strings.HasSuffix(e.Name(), ".tsv") {
				out = append(out, filepath.Join(a, e.Name()))
			}
		}
		if len(out) == n {
			return nil, fmt.Errorf("%s: directory holds no message files", a)
		}
	}
	return out, nil
}

// run decodes and reports every file. Unreadable files are reported on stderr and skipped, so
// one bad path does not hide the verdict on the others.
func (in *inspector) run(ctx context.Context, files []string) int {
	var (
		results []*inspected
		ioErr   bool
	)
	for _, name := range files {
		if ctx.Err() != nil {
			fmt.Fprintln(in.stderr, "roapproxy inspect: interrupted")
			return 2
		}
		body, err := in.read(name)
		if err != nil {
			fmt.Fprintf(in.stderr, "roapproxy inspect: %s\n", sanitize(err.Error()))
			ioErr = true
			continue
		}
		r := &inspected{File: name, Body: body, Msg: decode.Decode(body, in.hint(body))}
		for _, st := range in.stages {
			st(ctx, r)
		}
		results = append(results, r)
	}
	for _, f := range in.finishers {
		f()
	}

	worst := decode.Severity("")
	for _, r := range results {
		if s := r.Msg.Worst(); s.Rank() > worst.Rank() {
			worst = s
		}
	}
	var err error
	if in.jsonOut {
		err = in.printJSON(results)
	} else {
		err = in.printText(results)
	}
	if err != nil {
		fmt.Fprintf(in.stderr, "roapproxy inspect: writing output: %v\n", err)
		return 2
	}
	switch {
	case ioErr:
		return 2
	case worst == decode.SevError:
		return 1
	}
	return 0
}

// read returns the body of name ("-" is standard input). It reads at most one byte more than
// the decoder accepts: a larger body is refused by the decoder's size limit anyway, and a huge
// file must not be loaded whole just to be refused.
func (in *inspector) read(name string) ([]byte, error) {
	limit := int64(decode.DefaultLimits.MaxBytes) + 1
	if name == "-" {
		b, err := io.ReadAll(io.LimitReader(in.stdin, limit))
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		return b, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s: is a directory", name)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return b, nil
}

func (in *inspector) hint(body []byte) decode.Hint {
	ct := in.contentType
	if ct == "" {
		ct = guessContentType(body)
	}
	return decode.Hint{ContentType: ct, Pushed: in.pushed}
}

// guessContentType picks the Content-Type a peer would have sent with body, from its root
// element: files lose their HTTP headers, and the decoder weighs some deviations by what the
// content type claimed.
func guessContentType(body []byte) string {
	if len(body) >= 3 && body[0] == 0x03 && body[1] == 0x13 && body[2] == 0x6A {
		return decode.MIMEWBXML
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n\xEF\xBB\xBF")
	if len(trimmed) == 0 || trimmed[0] != '<' {
		return "application/octet-stream"
	}
	doc, err := decode.ParseXML(body, decode.DefaultLimits)
	if err != nil || doc.Root == nil {
		return "application/xml"
	}
	root := doc.Root
	roapish := strings.HasPrefix(root.Space, "urn:oma:bac:dldrm:roap") || root.Space == decode.NSXBS ||
		(root.Space == "" && root.Prefix == "roap")
	switch {
	case roapish && strings.EqualFold(root.Local, "roapTrigger"):
		return decode.MIMETrig
	case roapish:
		return decode.MIMEPDU
	}
	return "application/xml"
}

// colorWanted reports whether w is a terminal and the user has not opted out (no-color.org).
func colorWanted(w io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// ---- JSON output ----

type jsonCert struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
}

type jsonChain struct {
	Path         string     `json:"path"`
	Count        int        `json:"count"`
	Certificates []jsonCert `json:"certificates"`
}

// jsonMessage is the documented shape of one inspected message; nested messages use it too.
type jsonMessage struct {
	File        string            `json:"file"`
	Bytes       int               `json:"bytes"`
	ContentType string            `json:"contentType"`
	Family      string            `json:"family"`
	Kind        string            `json:"kind"`
	Variant     string            `json:"variant"`
	Role        string            `json:"role"`
	Status      string            `json:"status"`
	Namespace   string            `json:"namespace"`
	Reason      string            `json:"reason,omitempty"`
	NestedPath  string            `json:"nestedPath,omitempty"`
	Worst       string            `json:"worst"`
	IDs         map[string]string `json:"ids"`
	Signature   *decode.Span      `json:"signature"`
	Chains      []jsonChain       `json:"chains"`
	Fields      *decode.Field     `json:"fields"`
	Findings    []decode.Finding  `json:"findings"`
	Nested      []*jsonMessage    `json:"nested"`
}

func toJSON(file string, m *decode.Message) *jsonMessage {
	j := &jsonMessage{
		File: file, Bytes: len(m.Raw), ContentType: m.ContentType,
		Family: string(m.Family), Kind: m.Kind, Variant: m.Variant, Role: string(m.Role),
		Status: m.Status, Namespace: m.Namespace, Reason: m.Reason, NestedPath: m.NestedPath,
		Worst: string(m.Worst()), IDs: m.IDs, Signature: m.Signature, Fields: m.Fields(),
		Findings: m.Findings, Chains: []jsonChain{}, Nested: []*jsonMessage{},
	}
	// Consumers index these without nil checks.
	if j.IDs == nil {
		j.IDs = map[string]string{}
	}
	if j.Findings == nil {
		j.Findings = []decode.Finding{}
	}
	for _, c := range m.Chains {
		jc := jsonChain{Path: c.Path, Count: max(len(c.DER), len(c.Certs)), Certificates: []jsonCert{}}
		for _, cert := range c.Certs {
			if cert == nil {
				continue
			}
			jc.Certificates = append(jc.Certificates, jsonCert{
				Subject: cert.Subject.String(), Issuer: cert.Issuer.String(), Serial: cert.SerialNumber.String(),
				NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(),
			})
		}
		j.Chains = append(j.Chains, jc)
	}
	for _, n := range m.Nested {
		j.Nested = append(j.Nested, toJSON(file, n))
	}
	return j
}

func (in *inspector) printJSON(results []*inspected) error {
	out := make([]*jsonMessage, 0, len(results))
	for _, r := range results {
		out = append(out, toJSON(r.File, r.Msg))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := in.stdout.Write(escapeInvisibleJSON(buf.Bytes()))
	return err
}

// escapeInvisibleJSON rewrites DEL, C1 controls and invisible format characters (bidirectional
// overrides) inside JSON strings as \u escapes. encoding/json already escapes C0 controls, but
// people do `cat` JSON output to a terminal; the escaped form decodes to the same strings. Such
// runes are never JSON syntax, so every occurrence is inside a string literal.
func escapeInvisibleJSON(b []byte) []byte {
	invisible := func(r rune) bool { return r == 0x7f || r >= 0x80 && unsafeRune(r) }
	if !bytes.ContainsFunc(b, invisible) {
		return b
	}
	out := make([]byte, 0, len(b)+64)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if invisible(r) && !(r == utf8.RuneError && size <= 1) {
			if r > 0xFFFF {
				r1, r2 := utf16.EncodeRune(r)
				out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
			} else {
				out = fmt.Appendf(out, `\u%04x`, r)
			}
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}

// ---- text output ----

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
)

// paint wraps s, which must already be sanitized, in an ANSI style when colour is on.
func (in *inspector) paint(style, s string) string {
	if !in.color || s == "" {
		return s
	}
	return style + s + ansiReset
}

func sevStyle(s decode.Severity) string {
	switch s {
	case decode.SevError:
		return ansiBold + ansiRed
	case decode.SevWarning:
		return ansiYellow
	case decode.SevInfo:
		return ansiCyan
	}
	return ""
}

// errWriter remembers the first write error so the printing code can stay linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

func (in *inspector) printText(results []*inspected) error {
	w := &errWriter{w: in.stdout}
	for i, r := range results {
		if i > 0 {
			w.printf("\n")
		}
		name := r.File
		if name == "-" {
			name = "(standard input)"
		}
		w.printf("%s %s\n", in.paint(ansiBold, sanitize(name)), in.paint(ansiDim, fmt.Sprintf("(%d bytes, %s)", len(r.Body), sanitize(r.Msg.ContentType))))
		in.printMessage(w, r.Msg, "  ")
	}
	return w.err
}

// kv is one aligned line of the text output.
type kv struct{ key, value string }

func (in *inspector) printMessage(w *errWriter, m *decode.Message, indent string) {
	kind := string(m.Family) + " " + m.Kind
	if m.Family == decode.FamilyUnknown || m.Family == "" {
		kind = m.Kind
	}
	lines := []kv{{"kind", in.paint(ansiBold, sanitize(kind))}}
	if m.Variant != "" {
		lines = append(lines, kv{"variant", sanitize(m.Variant)})
	}
	if m.Role != "" {
		lines = append(lines, kv{"sender", sanitize(string(m.Role))})
	}
	status := "(none)"
	if m.Status != "" {
		status = sanitize(m.Status)
	}
	lines = append(lines, kv{"status", status})
	if m.Reason != "" {
		lines = append(lines, kv{"reason", sanitize(m.Reason)})
	}
	keys := make([]string, 0, len(m.IDs))
	for k := range m.IDs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		lines = append(lines, kv{sanitize(k), sanitize(m.IDs[k])})
	}
	if m.Signature != nil {
		lines = append(lines, kv{"signature", fmt.Sprintf("bytes %d..%d", m.Signature.Start, m.Signature.End)})
	}
	for _, c := range m.Chains {
		desc := "none parsed"
		if n := max(len(c.DER), len(c.Certs)); n > 0 {
			desc = fmt.Sprint(n)
		}
		lines = append(lines, kv{"certificates", fmt.Sprintf("%s at %s%s", desc, sanitize(c.Path), certSummary(c))})
	}
	for _, o := range m.OCSP {
		lines = append(lines, kv{"ocsp response", fmt.Sprintf("%d bytes at %s", len(o.DER), sanitize(o.Path))})
	}
	width := 0
	for _, l := range lines {
		width = max(width, utf8.RuneCountInString(l.key)+1)
	}
	for _, l := range lines {
		w.printf("%s%-*s %s\n", indent, width, l.key+":", l.value)
	}

	if in.fields {
		if f := m.Fields(); f != nil {
			w.printf("%sfields:\n", indent)
			in.printField(w, f, indent+"  ")
		}
	}

	in.printFindings(w, m.Findings, indent)

	for _, n := range m.Nested {
		w.printf("%sembedded message at %s:\n", indent, in.paint(ansiBold, sanitize(n.NestedPath)))
		in.printMessage(w, n, indent+"    ")
	}
}

func certSummary(c decode.Chain) string {
	var subjects []string
	for _, cert := range c.Certs {
		if cert != nil {
			subjects = append(subjects, sanitize(cert.Subject.String()))
		}
	}
	if len(subjects) == 0 {
		return ""
	}
	return " (" + strings.Join(subjects, " ← ") + ")"
}

func (in *inspector) printFindings(w *errWriter, fs []decode.Finding, indent string) {
	if len(fs) == 0 {
		w.printf("%sfindings: none\n", indent)
		return
	}
	count := map[decode.Severity]int{}
	for _, f := range fs {
		count[f.Severity]++
	}
	var parts []string
	for _, s := range []decode.Severity{decode.SevError, decode.SevWarning, decode.SevInfo} {
		if count[s] > 0 {
			word := string(s)
			if count[s] > 1 && s != decode.SevInfo {
				word += "s"
			}
			parts = append(parts, fmt.Sprintf("%d %s", count[s], word))
		}
	}
	w.printf("%sfindings: %s\n", indent, strings.Join(parts, ", "))

	// Worst first; within a severity keep the decoder's order, which follows the message.
	sorted := append([]decode.Finding(nil), fs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Severity.Rank() > sorted[j].Severity.Rank() })
	sevW, ruleW := 0, 0
	for _, f := range sorted {
		sevW = max(sevW, utf8.RuneCountInString(sanitize(string(f.Severity))))
		ruleW = max(ruleW, utf8.RuneCountInString(sanitize(f.Rule)))
	}
	for _, f := range sorted {
		sev := fmt.Sprintf("%-*s", sevW, strings.ToUpper(sanitize(string(f.Severity))))
		line := fmt.Sprintf("%s  %s  ", in.paint(sevStyle(f.Severity), sev), fmt.Sprintf("%-*s", ruleW, sanitize(f.Rule)))
		if f.Path != "" {
			line += sanitize(f.Path) + " "
		}
		line += "— " + sanitize(f.Message)
		if f.Ref != "" {
			line += " " + in.paint(ansiDim, "("+sanitize(f.Ref)+")")
		}
		w.printf("%s  %s\n", indent, line)
	}
}

// printField prints the field tree, one element or attribute per line, long values shortened.
func (in *inspector) printField(w *errWriter, f *decode.Field, indent string) {
	name := sanitize(f.Name)
	if f.Attr {
		name = "@" + name
	}
	if f.Value != "" {
		w.printf("%s%s = %s\n", indent, name, shorten(sanitize(f.Value), 100))
	} else {
		w.printf("%s%s\n", indent, name)
	}
	for _, c := range f.Children {
		in.printField(w, c, indent+"  ")
	}
}

func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + fmt.Sprintf("… (%d characters)", len(r))
}

// sanitize makes a string from traffic safe to print on a terminal. Bodies are hostile: an
// escape sequence in a nonce could rewrite the screen, hide a finding or set the window title,
// so every control character (C0, DEL, C1 — U+009B alone starts a CSI on some terminals), every
// invisible format character (bidirectional overrides that reorder what is shown), line and
// paragraph separators and invalid UTF-8 are shown as Go-style escapes instead.
func sanitize(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r == utf8.RuneError || r < 0x20 || (r >= 0x7f && r <= 0x9f) ||
		unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}
