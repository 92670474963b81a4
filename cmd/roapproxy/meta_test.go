package main

// Tests about the repository rather than the command: every package says what it is for, and
// imports flow one way down DESIGN.md's table of rooms. They live here because cmd/roapproxy is
// the one package allowed to know about all the others.

import (
	"bufio"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// room is one top-level package directory of DESIGN.md's table and what it may import besides
// the standard library and its own subpackages.
type room struct {
	internal []string // other rooms
	external []string // module path prefixes outside this module
	anything bool
}

// rooms mirrors the "may import" column of the package table in DESIGN.md and the README. A
// package that needs an arrow pointing up has found a missing interface; change the table and
// this map together only after thinking about that.
var rooms = map[string]room{
	"decode":    {external: []string{"github.com/beevik/etree", "github.com/russellhaering/goxmldsig"}},
	"verify":    {internal: []string{"decode"}, external: []string{"golang.org/x/crypto/ocsp", "golang.org/x/sys/cpu"}},
	"sim":       {internal: []string{"decode"}, external: []string{"golang.org/x/crypto"}},
	"rules":     {internal: []string{"decode", "verify"}},
	"captures":  {internal: []string{"decode", "verify"}},
	"intercept": {internal: []string{"decode", "verify", "rules", "captures"}, external: []string{"github.com/elazarl/goproxy"}},
	// web also reads decode's types and re-decodes stored bytes for the field tree: an edge
	// down the stack that DESIGN.md's table did not list (the README's table does).
	"web": {internal: []string{"captures", "rules", "decode"}, external: []string{"github.com/gorilla/websocket"}},
	"cmd": {anything: true},
}

// moduleRoot walks up from the working directory to the directory holding go.mod and returns
// it with the module path.
func moduleRoot(t *testing.T) (dir, module string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
					return dir, strings.Trim(strings.TrimSpace(rest), `"`)
				}
			}
			t.Fatalf("%s/go.mod has no module line", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// goPackage is one directory of Go files; only non-test files count for docs and imports.
type goPackage struct {
	rel     string // slash-separated path from the module root
	files   []string
	hasDoc  bool
	imports map[string][]string // import path -> files importing it
}

// goPackages parses every package directory below root, skipping what the go tool skips
// (testdata, names starting with . or _) and vendored or npm trees.
func goPackages(root string) ([]*goPackage, error) {
	byDir := map[string]*goPackage{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "vendor" || name == "node_modules" ||
				strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		dir := filepath.Dir(path)
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			return err
		}
		p := byDir[dir]
		if p == nil {
			p = &goPackage{rel: filepath.ToSlash(rel), imports: map[string][]string{}}
			byDir[dir] = p
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		p.files = append(p.files, name)
		if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
			p.hasDoc = true
		}
		for _, imp := range f.Imports {
			ip, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: %v", path, err)
			}
			p.imports[ip] = append(p.imports[ip], name)
		}
		return nil
	})
	var out []*goPackage
	for _, p := range byDir {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, err
}

// docProblems lists packages without a package doc comment.
func docProblems(pkgs []*goPackage) []string {
	var out []string
	for _, p := range pkgs {
		if !p.hasDoc {
			out = append(out, fmt.Sprintf("package %s has no doc comment: start one of %v with // Package <name> … saying what it is for", p.rel, p.files))
		}
	}
	return out
}

// importProblems lists imports that break the table of rooms.
func importProblems(pkgs []*goPackage, module string) []string {
	var out []string
	for _, p := range pkgs {
		top, _, _ := strings.Cut(p.rel, "/")
		r, known := rooms[top]
		if !known {
			out = append(out, fmt.Sprintf("package %s is in no room of DESIGN.md's package table; add it to the table (README and rooms in cmd/roapproxy/meta_test.go) with what it may import", p.rel))
			continue
		}
		if r.anything {
			continue
		}
		for ip, files := range p.imports {
			if allowedImport(ip, top, r, module) {
				continue
			}
			out = append(out, fmt.Sprintf("%s imports %q (in %s); the package table lets %s/ import only the standard library, %s", p.rel, ip, strings.Join(files, ", "), top, describe(r)))
		}
	}
	sort.Strings(out)
	return out
}

func allowedImport(ip, top string, r room, module string) bool {
	under := func(path, prefix string) bool { return path == prefix || strings.HasPrefix(path, prefix+"/") }
	if ip == module || under(ip, module) {
		rest := strings.TrimPrefix(strings.TrimPrefix(ip, module), "/")
		target, _, _ := strings.Cut(rest, "/")
		if target == top {
			return true
		}
		for _, in := range r.internal {
			if target == in {
				return true
			}
		}
		return false
	}
	first, _, _ := strings.Cut(ip, "/")
	if !strings.Contains(first, ".") {
		return true // standard library
	}
	for _, ext := range r.external {
		if under(ip, ext) {
			return true
		}
	}
	return false
}

func describe(r room) string {
	var parts []string
	for _, in := range r.internal {
		parts = append(parts, in+"/")
	}
	parts = append(parts, r.external...)
	if len(parts) == 0 {
		return "and nothing else"
	}
	return strings.Join(parts, ", ")
}

func TestEveryPackageHasDocComment(t *testing.T) {
	root, _ := moduleRoot(t)
	pkgs, err := goPackages(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 2 {
		t.Fatalf("found %d packages under %s; the walk is broken", len(pkgs), root)
	}
	for _, p := range docProblems(pkgs) {
		t.Error(p)
	}
}

func TestImportGraphFollowsDesign(t *testing.T) {
	root, module := moduleRoot(t)
	pkgs, err := goPackages(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range importProblems(pkgs, module) {
		t.Error(p)
	}
}

// TestMetaChecksCatchViolations runs both checks on a made-up module, so they are known to fail
// when they should.
func TestMetaChecksCatchViolations(t *testing.T) {
	root := t.TempDir()
	write := func(rel, src string) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n")
	write("decode/a.go", "// Package decode is documented.\npackage decode\n\nimport (\n\t\"bytes\"\n\t\"example.com/m/verify\"\n\t\"github.com/beevik/etree\"\n)\n")
	write("decode/sub/s.go", "// Package sub is documented.\npackage sub\n\nimport \"example.com/m/decode\"\n")
	write("verify/v.go", "package verify\n\nimport (\n\t\"example.com/m/decode\"\n\t\"golang.org/x/crypto/ocsp\"\n\t\"golang.org/x/crypto/ssh\"\n)\n")
	write("verify/doc_test.go", "// Package verify has its doc only in a test file, which does not count.\npackage verify\n")
	write("web/w.go", "//go:build linux\n\n// Package web is documented.\npackage web\n\nimport \"example.com/m/intercept\"\n")
	write("cmd/x/main.go", "// Command x may import anything.\npackage main\n\nimport _ \"example.com/m/web\"\nimport _ \"github.com/anything/at/all\"\n")
	write("util/u.go", "// Package util is not in the table.\npackage util\n")
	write("testdata/t.go", "package ignored\n\nimport \"example.com/m/cmd/x\"\n")
	write("web/e2e/node_modules/x/x.go", "package ignored\n")

	pkgs, err := goPackages(root)
	if err != nil {
		t.Fatal(err)
	}
	var rels []string
	for _, p := range pkgs {
		rels = append(rels, p.rel)
	}
	if got := strings.Join(rels, " "); got != "cmd/x decode decode/sub util verify web" {
		t.Errorf("packages found: %s", got)
	}

	docs := docProblems(pkgs)
	if len(docs) != 1 || !strings.Contains(docs[0], "package verify has no doc") {
		t.Errorf("doc problems: %q", docs)
	}

	imps := importProblems(pkgs, "example.com/m")
	want := []string{
		`decode imports "example.com/m/verify"`,
		`util is in no room`,
		`verify imports "golang.org/x/crypto/ssh"`,
		`web imports "example.com/m/intercept"`,
	}
	if len(imps) != len(want) {
		t.Fatalf("import problems:\n%s", strings.Join(imps, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(imps[i], w) {
			t.Errorf("problem %d = %q, want it to mention %q", i, imps[i], w)
		}
	}
}
