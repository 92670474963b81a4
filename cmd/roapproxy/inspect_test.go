package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/roapproxy/roapproxy/decode"
)

// identifier builds a roap:Identifier element as the shared contract lays it out.
func identifier(name string, seed byte) *decode.Node {
	hash := bytes.Repeat([]byte{seed}, 20)
	return decode.El(name,
		decode.El("keyIdentifier",
			decode.NS("xsi", decode.NSXSI),
			decode.A("algorithm", decode.AlgSHA1),
			decode.A("xsi:type", "roap:X509SPKIHash"),
			decode.El("hash", base64.StdEncoding.EncodeToString(hash))))
}

// leaveDomainRequest builds a well-formed, complete leaveDomainRequest with the given domainID.
func leaveDomainRequest(domainID string) []byte {
	return decode.El("roap:leaveDomainRequest",
		decode.NS("roap", decode.NSROAP),
		identifier("deviceID", 0x11),
		identifier("riID", 0x22),
		decode.El("nonce", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))),
		decode.El("time", "2026-01-02T03:04:05Z"),
		decode.El("domainID", domainID),
		decode.El("signature", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 128))),
	).Bytes()
}

func writeFile(t *testing.T, name string, body []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type result struct {
	code           int
	stdout, stderr string
}

func inspectT(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := inspectMain(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func TestInspectValidMessage(t *testing.T) {
	p := writeFile(t, "ldr.xml", leaveDomainRequest("ACMEUSERDOM42001"))
	r := inspectT(t, "", p)
	if r.code != 0 {
		t.Fatalf("exit %d for a valid message, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"roap leaveDomainRequest",
		"sender:",
		"device",
		"domainID:",
		"ACMEUSERDOM42001",
		"nonce:",
		base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")),
		decode.MIMEPDU, // guessed from the body
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "ERROR") {
		t.Errorf("valid message printed an error finding:\n%s", r.stdout)
	}
	// IDs are aligned key: value lines: every value starts in the same column.
	col := -1
	for _, line := range strings.Split(r.stdout, "\n") {
		for _, key := range []string{"  kind:", "  domainID:", "  nonce:", "  riID:"} {
			if strings.HasPrefix(line, key) {
				c := len(line) - len(strings.TrimLeft(line[len(key):], " "))
				if col == -1 {
					col = c
				} else if c != col {
					t.Errorf("value of %q starts at column %d, others at %d:\n%s", key, c, col, r.stdout)
				}
			}
		}
	}
}

func TestInspectMalformedExitsOne(t *testing.T) {
	body := leaveDomainRequest("ACMEUSERDOM42001")
	p := writeFile(t, "cut.xml", body[:len(body)/2])
	r := inspectT(t, "", p)
	if r.code != 1 {
		t.Fatalf("exit %d for truncated XML, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "ERROR") || !strings.Contains(r.stdout, decode.RuleMalformed.ID) {
		t.Errorf("truncated XML not reported as %s:\n%s", decode.RuleMalformed.ID, r.stdout)
	}
}

func TestInspectMissingMandatoryField(t *testing.T) {
	root, err := decode.ParseXML(leaveDomainRequest("ACMEUSERDOM42001"), decode.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	root.Root.Remove("nonce")
	p := writeFile(t, "nononce.xml", root.Root.Bytes())
	r := inspectT(t, "", p)
	if r.code != 1 {
		t.Fatalf("exit %d for a leaveDomainRequest without nonce, want 1\n%s", r.code, r.stdout)
	}
	re := regexp.MustCompile(`ERROR\s+ROAP-LDREQ-SHAPE\s+/leaveDomainRequest/nonce — .*\(roap-core`)
	if !re.MatchString(r.stdout) {
		t.Errorf("finding line not in the form SEVERITY RULE path — message (ref):\n%s", r.stdout)
	}
}

func TestInspectStdin(t *testing.T) {
	r := inspectT(t, string(leaveDomainRequest("ACMEUSERDOM42001")), "-")
	if r.code != 0 {
		t.Fatalf("exit %d reading stdin, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "(standard input)") || !strings.Contains(r.stdout, "leaveDomainRequest") {
		t.Errorf("stdin not decoded:\n%s", r.stdout)
	}
}

func TestInspectUsageAndIOErrors(t *testing.T) {
	good := writeFile(t, "ok.xml", leaveDomainRequest("ACMEUSERDOM42001"))
	missing := filepath.Join(t.TempDir(), "nope.xml")

	r := inspectT(t, "", missing)
	if r.code != 2 || !strings.Contains(r.stderr, "nope.xml") {
		t.Errorf("missing file: exit %d, stderr %q; want 2 naming the file", r.code, r.stderr)
	}

	// A missing file next to a readable one: the readable one is still reported, the status is 2.
	r = inspectT(t, "", missing, good)
	if r.code != 2 || !strings.Contains(r.stdout, "leaveDomainRequest") {
		t.Errorf("missing+good: exit %d, stdout %q; want 2 and the good file's report", r.code, r.stdout)
	}

	r = inspectT(t, "", t.TempDir())
	if r.code != 2 || !strings.Contains(r.stderr, "directory holds no message files") {
		t.Errorf("empty directory: exit %d, stderr %q", r.code, r.stderr)
	}

	r = inspectT(t, "", "--no-such-flag", good)
	if r.code != 2 || !strings.Contains(r.stderr, "no-such-flag") || !strings.Contains(r.stderr, "Usage: roapproxy inspect") {
		t.Errorf("bad flag: exit %d, stderr %q", r.code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("bad flag wrote to stdout: %q", r.stdout)
	}

	r = inspectT(t, "")
	if r.code != 2 || !strings.Contains(r.stderr, "no FILE") {
		t.Errorf("no arguments: exit %d, stderr %q", r.code, r.stderr)
	}

	r = inspectT(t, "", "-h")
	if r.code != 0 || !strings.Contains(r.stdout, "-json") || r.stderr != "" {
		t.Errorf("-h: exit %d, stdout %q", r.code, r.stdout)
	}
}

func TestInspectJSONShape(t *testing.T) {
	good := writeFile(t, "ok.xml", leaveDomainRequest("ACMEUSERDOM42001"))
	bad := writeFile(t, "bad.xml", []byte("<roap:leaveDomainRequest xmlns:roap=\""+decode.NSROAP+"\"><nonce>"))
	r := inspectT(t, "", "--json", good, bad)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (one file is malformed)\n%s", r.code, r.stderr)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
	}
	if len(got) != 2 {
		t.Fatalf("%d objects, want 2", len(got))
	}
	for _, o := range got {
		for _, k := range []string{"file", "family", "kind", "variant", "role", "status", "ids", "fields", "findings", "nested"} {
			if _, ok := o[k]; !ok {
				t.Errorf("object for %v lacks %q", o["file"], k)
			}
		}
		if _, ok := o["ids"].(map[string]any); !ok {
			t.Errorf("ids is %T, want an object", o["ids"])
		}
		if _, ok := o["findings"].([]any); !ok {
			t.Errorf("findings is %T, want an array", o["findings"])
		}
		if _, ok := o["nested"].([]any); !ok {
			t.Errorf("nested is %T, want an array", o["nested"])
		}
	}
	ok := got[0]
	if ok["file"] != good || ok["kind"] != "leaveDomainRequest" || ok["family"] != "roap" || ok["role"] != "device" {
		t.Errorf("first object: %v", ok)
	}
	if ids := ok["ids"].(map[string]any); ids["domainID"] != "ACMEUSERDOM42001" {
		t.Errorf("ids = %v", ids)
	}
	fields, _ := ok["fields"].(map[string]any)
	if fields["path"] != "/leaveDomainRequest" || len(fields["children"].([]any)) < 6 {
		t.Errorf("fields tree: %v", fields)
	}
	badObj := got[1]
	if badObj["fields"] != nil {
		t.Errorf("malformed body has a field tree: %v", badObj["fields"])
	}
	fs := badObj["findings"].([]any)
	if len(fs) == 0 {
		t.Fatal("malformed body has no findings")
	}
	f := fs[0].(map[string]any)
	for _, k := range []string{"rule", "severity", "message"} {
		if s, _ := f[k].(string); s == "" {
			t.Errorf("finding lacks %q: %v", k, f)
		}
	}
	if f["rule"] != decode.RuleMalformed.ID || f["severity"] != "error" {
		t.Errorf("finding = %v", f)
	}
}

// TestJSONNested checks the recursive shape on a hand-made message, independent of which kinds
// the decoder embeds today.
func TestJSONNested(t *testing.T) {
	inner := decode.Decode(leaveDomainRequest("ACMEUSERDOM42001"), decode.Hint{})
	inner.NestedPath = "/outer/reqInfo/leaveDomainRequest"
	inner.Add(decode.RuleBase64.At("/leaveDomainRequest/nonce", "planted"))
	outer := &decode.Message{Family: decode.FamilySCE, Kind: "outer", IDs: map[string]string{"nonce": "n"}, Nested: []*decode.Message{inner}}
	var out bytes.Buffer
	in := &inspector{stdout: &out, jsonOut: true}
	if err := in.printJSON([]*inspected{{File: "x", Msg: outer}}); err != nil {
		t.Fatal(err)
	}
	var got []jsonMessage
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Nested) != 1 {
		t.Fatalf("nested lost: %s", out.String())
	}
	n := got[0].Nested[0]
	if n.Kind != "leaveDomainRequest" || n.NestedPath != inner.NestedPath || n.File != "x" || n.Fields == nil {
		t.Errorf("nested object: %+v", n)
	}
	if got[0].Worst != "error" || len(n.Findings) == 0 || n.Findings[len(n.Findings)-1].Message != "planted" {
		t.Errorf("nested findings or worst wrong: worst %q, %+v", got[0].Worst, n.Findings)
	}
	if got[0].Findings == nil || n.Nested == nil {
		t.Error("empty findings or nested must be [] not null")
	}

	// Text output indents the embedded message below its parent.
	out.Reset()
	in.jsonOut = false
	if err := in.printText([]*inspected{{File: "x", Msg: outer}}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !strings.Contains(text, "embedded message at /outer/reqInfo/leaveDomainRequest:") {
		t.Errorf("no embedded header:\n%s", text)
	}
	if !regexp.MustCompile(`(?m)^      kind: +roap leaveDomainRequest$`).MatchString(text) {
		t.Errorf("embedded message not indented below its parent:\n%s", text)
	}
	if !regexp.MustCompile(`(?m)^        ERROR +DEC-VALUE-BASE64 +/leaveDomainRequest/nonce — planted`).MatchString(text) {
		t.Errorf("embedded finding missing or not indented:\n%s", text)
	}
}

// hostile carries what a malicious peer can put in a well-formed XML value: a C1 CSI (U+009B
// alone starts an escape sequence on some terminals), an OSC window-title write ended by ST, a
// right-to-left override that reorders what follows, DEL and a line break that would forge an
// extra output line. XML forbids raw C0 controls such as ESC, so those are tested on a message
// built by hand (TestPrintTextNeutralizesEverything).
const hostile = "\u009b2J\u009d0;pwned\u009c\u202eevil\x7fline\nERROR FORGED"

const hostileShown = `\u009b2J\u009d0;pwned\u009c\u202eevil\x7fline\nERROR FORGED`

var rawControls = []string{"\x1b", "\x07", "\x7f", "\u009b", "\u009c", "\u009d", "\u202e"}

// stripOwnColors removes the escape sequences inspect itself emits, leaving any other.
func stripOwnColors(text string) string {
	return regexp.MustCompile(`\x1b\[[0-9;]*m`).ReplaceAllStringFunc(text, func(s string) string {
		switch s {
		case ansiReset, ansiBold, ansiDim, ansiRed, ansiYellow, ansiCyan, ansiBold + ansiRed:
			return ""
		}
		return s
	})
}

func TestInspectNeutralizesTerminalControls(t *testing.T) {
	p := writeFile(t, "evil\x1b[5m.xml", leaveDomainRequest(hostile))
	for _, color := range []bool{false, true} {
		var out, errb bytes.Buffer
		in := &inspector{stdout: &out, stderr: &errb, color: color, fields: true}
		body, err := in.read(p)
		if err != nil {
			t.Fatal(err)
		}
		r := &inspected{File: p, Body: body, Msg: decode.Decode(body, in.hint(body))}
		if r.Msg.ID("domainID") != hostile {
			t.Fatalf("test premise: decoder did not keep the hostile domainID (got %q)", r.Msg.ID("domainID"))
		}
		if err := in.printText([]*inspected{r}); err != nil {
			t.Fatal(err)
		}
		text := out.String()
		stripped := stripOwnColors(text)
		var raw []string
		for _, bad := range rawControls {
			if strings.Contains(stripped, bad) {
				raw = append(raw, fmt.Sprintf("%q", bad))
			}
		}
		if len(raw) > 0 {
			t.Errorf("color=%v: output contains raw %s:\n%q", color, strings.Join(raw, " "), text)
		}
		if strings.Contains(text, "\nERROR FORGED") {
			t.Errorf("color=%v: a value forged an output line:\n%s", color, text)
		}
		if !strings.Contains(text, hostileShown) {
			t.Errorf("color=%v: hostile value not shown escaped:\n%s", color, text)
		}
		if !strings.Contains(text, `evil\x1b[5m.xml`) {
			t.Errorf("color=%v: file name not escaped:\n%s", color, text)
		}
		if color != strings.Contains(text, ansiReset) {
			t.Errorf("color=%v but reset sequence present=%v", color, !color)
		}
	}

	// JSON keeps the exact value (it is data, not display) but never a raw control or override.
	r := inspectT(t, "", "--json", p)
	for _, bad := range rawControls {
		if strings.Contains(r.stdout, bad) {
			t.Errorf("--json output contains raw %q", bad)
		}
	}
	var got []jsonMessage
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 1 || got[0].IDs["domainID"] != hostile {
		t.Errorf("--json lost the exact value: err %v, %+v", err, got)
	}
}

// TestPrintTextNeutralizesEverything puts an escape sequence into every string the text output
// shows, as a future decoder (WBXML strings, error messages quoting input) might pass them on.
func TestPrintTextNeutralizesEverything(t *testing.T) {
	const esc = "\x1b]0;x\x07\x1b[2J"
	nested := &decode.Message{Family: decode.FamilyROAP, Kind: "k" + esc, NestedPath: "/p" + esc, IDs: map[string]string{"nonce": esc},
		Findings: []decode.Finding{{Rule: "R" + esc, Severity: decode.SevWarning, Message: "m" + esc, Path: "/q" + esc, Ref: "ref" + esc}}}
	m := &decode.Message{Family: decode.Family("f" + esc), Kind: "k" + esc, Variant: "v" + esc, Role: decode.Role("r" + esc),
		Status: "s" + esc, Reason: "why" + esc, ContentType: "ct" + esc, IDs: map[string]string{"key" + esc: "value" + esc},
		Findings: []decode.Finding{{Rule: "R" + esc, Severity: decode.Severity("sev" + esc), Message: "m" + esc, Path: "/q" + esc, Ref: "ref" + esc}},
		Chains:   []decode.Chain{{Path: "/c" + esc}}, OCSP: []decode.OCSPBlob{{Path: "/o" + esc}}, Nested: []*decode.Message{nested}}
	for _, color := range []bool{false, true} {
		var out bytes.Buffer
		in := &inspector{stdout: &out, color: color}
		if err := in.printText([]*inspected{{File: "f" + esc, Msg: m}}); err != nil {
			t.Fatal(err)
		}
		if s := stripOwnColors(out.String()); strings.ContainsAny(s, "\x1b\x07") {
			t.Errorf("color=%v: raw control in output:\n%q", color, out.String())
		}
		if n := strings.Count(out.String(), `\x1b]0;x\x07\x1b[2J`); n < 20 {
			t.Errorf("color=%v: escaped form shown %d times, want every field:\n%s", color, n, out.String())
		}
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"plain ROAP value +/=":  "plain ROAP value +/=",
		"ümlaut → ok":           "ümlaut → ok",
		"a\tb\nc\rd":            `a\tb\nc\rd`,
		"\x00\x7f":              `\x00\x7f`,
		"\xff\xfe":              `\xff\xfe`,
		"x\u200by\u2066z\u2028": `x\u200by\u2066z\u2028`,
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEscapeInvisibleJSON(t *testing.T) {
	b, _ := json.Marshal(map[string]string{"v": "a\u009bb\u202ec\U000E0001d é"})
	esc := escapeInvisibleJSON(b)
	if bytes.ContainsAny(esc, "\u009b\u202e\U000E0001") || !bytes.Contains(esc, []byte("é")) {
		t.Errorf("escaped: %s", esc)
	}
	var v map[string]string
	if err := json.Unmarshal(esc, &v); err != nil || v["v"] != "a\u009bb\u202ec\U000E0001d é" {
		t.Errorf("escaped JSON decodes to %q (err %v)", v["v"], err)
	}
}

func TestGuessContentType(t *testing.T) {
	trigger := `<roap:roapTrigger xmlns:roap="` + decode.NSROAP + `" version="1.0"><leaveDomain/></roap:roapTrigger>`
	for body, want := range map[string]string{
		string(leaveDomainRequest("D001")): decode.MIMEPDU,
		trigger:                            decode.MIMETrig,
		`<dom:x xmlns:dom="` + decode.NSDOM + `"></dom:x>`: "application/xml",
		"\x03\x13\x6a\x00":                  decode.MIMEWBXML,
		"HTTP/1.1 200 OK":                   "application/octet-stream",
		`<roap:registrationRequest><nonce>`: "application/xml", // does not parse
		`<roap:deviceHello><version>2.0</version></roap:deviceHello>`: decode.MIMEPDU,
	} {
		if got := guessContentType([]byte(body)); got != want {
			t.Errorf("guessContentType(%.40q) = %q, want %q", body, got, want)
		}
	}
}

func TestColorWanted(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm")
	if colorWanted(&bytes.Buffer{}) {
		t.Error("colour for a buffer")
	}
	pipeR, pipeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pipeR.Close()
	defer pipeW.Close()
	if colorWanted(pipeW) {
		t.Error("colour for a pipe")
	}
	tty, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0) // a character device, like a terminal
	if err != nil {
		t.Skip(err)
	}
	defer tty.Close()
	if !colorWanted(tty) {
		t.Error("no colour for a character device")
	}
	t.Setenv("NO_COLOR", "1")
	if colorWanted(tty) {
		t.Error("colour despite NO_COLOR")
	}
}

// TestInspectOptionsExtend shows how another file adds a flag and a per-message stage.
func TestInspectOptionsExtend(t *testing.T) {
	saved := inspectOptions
	t.Cleanup(func() { inspectOptions = saved })
	var seen []string
	inspectOptions = append(inspectOptions, func(fs *flag.FlagSet) func(*inspector) error {
		tag := fs.String("tag", "", "test flag")
		return func(in *inspector) error {
			in.stages = append(in.stages, func(_ context.Context, r *inspected) {
				seen = append(seen, r.File)
				r.Msg.Add(decode.RuleBase64.At("", "stage %s ran", *tag))
			})
			return nil
		}
	})
	p := writeFile(t, "ok.xml", leaveDomainRequest("ACMEUSERDOM42001"))
	r := inspectT(t, "", "--tag", "T1", p)
	if r.code != 1 || len(seen) != 1 || !strings.Contains(r.stdout, "stage T1 ran") {
		t.Errorf("extension stage: exit %d, seen %v\n%s%s", r.code, seen, r.stdout, r.stderr)
	}
}

// TestInspectBinaryOnVectors builds the real command and runs it on the shared sample messages,
// which include malformed ones.
func TestInspectBinaryOnVectors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := filepath.Join("..", "..", "..", "shared", "vectors")
	files, _ := filepath.Glob(filepath.Join(dir, "*.xml"))
	if len(files) == 0 {
		t.Skipf("no vectors in %s", dir)
	}
	bin := filepath.Join(t.TempDir(), "roapproxy")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, append([]string{"inspect", "--json"}, files...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err == nil || !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("inspect on %d vectors: %v (want exit status 1)\n%s", len(files), err, stderr.String())
	}
	var got []jsonMessage
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output does not parse: %v", err)
	}
	if len(got) != len(files) {
		t.Errorf("%d objects for %d files", len(got), len(files))
	}
	for i, m := range got {
		if m.File != files[i] || m.Kind == "" || m.Findings == nil || m.IDs == nil {
			t.Errorf("object %d: file %q kind %q", i, m.File, m.Kind)
		}
	}

	// The human form of the same run ends the same way and prints every file.
	cmd = exec.Command(bin, append([]string{"inspect"}, files...)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	text, err := cmd.Output()
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("text mode: %v", err)
	}
	for _, f := range files {
		if !bytes.Contains(text, []byte(f)) {
			t.Errorf("text output does not mention %s", f)
		}
	}
}

func TestInspectFolderIsOneConversationInNameOrder(t *testing.T) {
	dir := t.TempDir()
	// Written out of order on purpose: the response first by creation, second by name.
	os.WriteFile(filepath.Join(dir, "0002-leaveDomainResponse.xml"), []byte(`<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success"><nonce>AAAAAAAAAAAAAAAAAAAAAA==</nonce><domainID>ACMEUSERDOM42001</domainID></roap:leaveDomainResponse>`), 0o644)
	os.WriteFile(filepath.Join(dir, "0001-leaveDomainRequest.xml"), []byte(leaveDomainRequest("ACMEUSERDOM42001")), 0o644)
	os.WriteFile(filepath.Join(dir, "index.tsv"), []byte("not a message"), 0o644)
	r := inspectT(t, "", "--json", dir)
	var out []struct {
		File string `json:"file"`
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if len(out) != 2 || out[0].Kind != "leaveDomainRequest" || out[1].Kind != "leaveDomainResponse" {
		t.Fatalf("folder not expanded in name order (index.tsv skipped): %+v", out)
	}
	// The two files are one conversation: the response's nonce is judged against the request's.
	if !strings.Contains(r.stdout, "NONCE-ECHO") {
		t.Fatalf("cross-message rule did not apply across the folder's files:\n%s", r.stdout)
	}
}
