package decode

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Helpers shared by the scanner, c14n, limits, fuzz and benchmark tests. Their names start with
// fx so they cannot clash with helpers other test files of the package define.

// fxVectorsDir is the shared folder of sample messages.
var fxVectorsDir = filepath.Join("..", "..", "shared", "vectors")

// fxVectorFiles returns the XML files (and schema fragments, which are XML too) of the shared
// vectors folder, including the negative subfolder, sorted. It returns nil when the folder is
// absent (a checkout without the shared data).
func fxVectorFiles(tb testing.TB) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(fxVectorsDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".xml") || strings.HasSuffix(p, ".xsd")) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		tb.Fatalf("listing %s: %v", fxVectorsDir, err)
	}
	sort.Strings(out)
	return out
}

// fxNeedXmllint skips the test when xmllint is not installed (CI installs it).
func fxNeedXmllint(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("xmllint"); err != nil {
		tb.Skip("xmllint not installed")
	}
}

// fxXmllintResult is what `xmllint --exc-c14n` made of a document.
type fxXmllintResult struct {
	Out      []byte
	Stderr   string
	Failed   bool // xmllint refused the document (not well-formed)
	NSErrors bool // xmllint reported namespace errors (undeclared prefixes and the like)
}

// fxXmllintC14N runs `xmllint --exc-c14n` on doc, written to a temporary file. xmllint only
// offers the "with comments" variant, so comments are removed from doc first: the result is then
// Exclusive XML Canonicalization without comments, which is what Canonical implements.
func fxXmllintC14N(tb testing.TB, doc []byte) fxXmllintResult {
	tb.Helper()
	doc = fxStripComments(doc)
	f, err := os.CreateTemp(tb.TempDir(), "c14n-*.xml")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := f.Write(doc); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("xmllint", "--nonet", "--exc-c14n", f.Name())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	r := fxXmllintResult{Out: stdout.Bytes(), Stderr: stderr.String()}
	if runErr != nil {
		if _, ok := runErr.(*exec.ExitError); !ok {
			tb.Fatalf("running xmllint: %v", runErr)
		}
		r.Failed = true
	}
	r.NSErrors = strings.Contains(r.Stderr, "namespace error")
	return r
}

// fxMustParse parses doc with the default limits or fails the test.
func fxMustParse(tb testing.TB, doc string) *Document {
	tb.Helper()
	d, err := ParseXML([]byte(doc), DefaultLimits)
	if err != nil {
		tb.Fatalf("ParseXML(%q): %v", fxShort(doc), err)
	}
	return d
}

// fxShort abbreviates a document for failure messages.
func fxShort(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// fxWalk calls fn for every node of the tree at n in document order.
func fxWalk(n *Node, fn func(*Node)) {
	fn(n)
	for _, c := range n.Children {
		fxWalk(c, fn)
	}
}

// fxElements returns every element of the tree at n in document order.
func fxElements(n *Node) []*Node {
	var out []*Node
	fxWalk(n, func(x *Node) {
		if x.Kind == ElementNode {
			out = append(out, x)
		}
	})
	return out
}

// fxInScope returns the namespace declarations in scope at n that n does not make itself,
// innermost binding per prefix, as (prefix, uri) pairs sorted by prefix.
func fxInScope(n *Node) [][2]string {
	own := map[string]bool{}
	for _, a := range n.Attrs {
		if a.IsNS {
			own[a.declaredPrefix()] = true
		}
	}
	seen := map[string]bool{}
	var out [][2]string
	for e := n.Parent; e != nil; e = e.Parent {
		for _, a := range e.Attrs {
			if !a.IsNS {
				continue
			}
			p := a.declaredPrefix()
			if own[p] || seen[p] {
				continue
			}
			seen[p] = true
			out = append(out, [2]string{p, a.Value})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// fxExtractSubtree returns the wire bytes of element n as a standalone document: the namespace
// declarations n inherits are copied onto its start tag, so that exclusive c14n of the result is,
// by the W3C rules, exclusive c14n of n's subtree within its document.
func fxExtractSubtree(raw []byte, n *Node) []byte {
	nameEnd := n.Start + 1 + len(n.QName())
	var b bytes.Buffer
	b.Write(raw[n.Start:nameEnd])
	for _, d := range fxInScope(n) {
		if d[0] == "" {
			if d[1] == "" {
				continue
			}
			b.WriteString(` xmlns="`)
		} else {
			b.WriteString(` xmlns:` + d[0] + `="`)
		}
		b.Write(appendAttrValue(nil, d[1]))
		b.WriteByte('"')
	}
	b.Write(raw[nameEnd:n.End])
	return b.Bytes()
}

// fxCut returns raw without the byte range of node n.
func fxCut(raw []byte, n *Node) []byte {
	out := append([]byte(nil), raw[:n.Start]...)
	return append(out, raw[n.End:]...)
}

// fxStripComments removes comments, leaving CDATA sections and processing instructions (which
// may contain "<!--") alone. An unterminated construct is left as it is, so a malformed document
// stays malformed.
func fxStripComments(doc []byte) []byte {
	var out []byte
	for i := 0; i < len(doc); {
		rest := doc[i:]
		var end []byte
		switch {
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			end = []byte("]]>")
		case bytes.HasPrefix(rest, []byte("<?")):
			end = []byte("?>")
		case bytes.HasPrefix(rest, []byte("<!--")):
			k := bytes.Index(rest[4:], []byte("-->"))
			if k < 0 {
				return append(out, rest...)
			}
			i += 4 + k + 3
			continue
		default:
			out = append(out, doc[i])
			i++
			continue
		}
		k := bytes.Index(rest[2:], end)
		if k < 0 {
			return append(out, rest...)
		}
		out = append(out, rest[:2+k+len(end)]...)
		i += 2 + k + len(end)
	}
	return out
}

// fxXmllintAccepts reports whether `xmllint --noout` finds doc well-formed (namespace errors
// are not well-formedness errors for xmllint either).
func fxXmllintAccepts(tb testing.TB, doc []byte) bool {
	tb.Helper()
	cmd := exec.Command("xmllint", "--nonet", "--noout", "-")
	cmd.Stdin = bytes.NewReader(doc)
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			tb.Fatalf("running xmllint: %v", err)
		}
	}
	return err == nil
}
