package verify

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/decode"
)

func TestLoadTrustDirectory(t *testing.T) {
	p := testPKI(t)
	dir := t.TempDir()
	if err := p.Write(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a := tr.Anchors(); len(a) != 1 || !a[0].Equal(p.Root.Cert) {
		t.Fatalf("a directory trusts its self-signed certificates only, got %d anchors", len(a))
	}
	// The RI's certificate is known from the directory, so a chainless message verifies, the CA
	// completing the path to the root.
	v := New(tr, Options{Clock: func() time.Time { return t0 }})
	s := tdr{ri: p.RIs[0], dev: p.Devices[0].ID(), tdid: "td", nonce: nonce("dir"), qty: 1, noChain: true}
	fs := v.Check(decHint(s.build(t, signPSS20), "tokenRequest", false), Context{Time: t0})
	noErrors(t, fs)
	wantNot(t, fs, "ROAP-SIG-NOKEY")
	wantNot(t, fs, "CHAIN-UNTRUSTED")
}

func TestLoadTrustFiles(t *testing.T) {
	p := testPKI(t)
	dir := t.TempDir()
	if err := p.Write(dir); err != nil {
		t.Fatal(err)
	}
	// An explicitly named file pins even an intermediate.
	tr, err := LoadTrust(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	v := New(tr, Options{Clock: func() time.Time { return t0 }})
	s := tdr{ri: p.RIs[0], dev: p.Devices[0].ID(), tdid: "td", nonce: nonce("f"), qty: 1}
	fs := v.Check(decHint(s.build(t, signPSS20), "tokenRequest", false), Context{Time: t0})
	noErrors(t, fs)
	want(t, fs, "CHAIN-ROOT-INCLUDED", decode.SevInfo) // the chain carries the pinned CA

	// DER works too.
	der := filepath.Join(dir, "root.der")
	if err := os.WriteFile(der, p.Root.Cert.Raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if tr, err := LoadTrust(der); err != nil || len(tr.Anchors()) != 1 {
		t.Fatalf("DER root: %v", err)
	}
	for _, bad := range []string{filepath.Join(dir, "missing.pem"), filepath.Join(dir, "ca.key"), t.TempDir()} {
		if _, err := LoadTrust(bad); err == nil {
			t.Errorf("LoadTrust(%s) should fail", bad)
		}
	}
}

func TestParseKeys(t *testing.T) {
	ri, dea := "3hDKO+0bWpDJtl1pFmJUGYZBh7w=", "YbPfzWVQ34dBfMns1QzX5L33p88="
	good := `# MAC keys
` + ri + ` 00112233445566778899aabbccddeeff00112233
` + dea + ` 0011 hmac-sha256   # one side, algorithm named
` + ri + ` ` + dea + ` deadbeef
` + ri + ` ` + dea + ` cafe http://www.w3.org/2001/04/xmldsig-more#hmac-sha256

`
	tr := NewTrust()
	if err := tr.ParseKeys(strings.NewReader(good), "mk.txt"); err != nil {
		t.Fatal(err)
	}
	ks := tr.macKeysFor(ri, dea)
	if len(ks) != 4 {
		t.Fatalf("keys for the pair: %+v", ks)
	}
	if ks[0].RI != ri || ks[0].Source != "mk.txt:4" || ks[1].Alg != MACHMACSHA256 || ks[1].Source != "mk.txt:5" {
		t.Fatalf("pair keys first, in file order: %+v", ks)
	}
	if ks := tr.macKeysFor("", dea); len(ks) != 3 {
		t.Fatalf("a drmTrigger names only the DEA: %+v", ks)
	}
	for _, bad := range []string{
		ri + " nothex",
		"not*base64 0011",
		ri,
		ri + " " + dea + " " + ri + " 00 hmac-sha1",
		ri + " hmac-sha1 hmac-sha1",
	} {
		err := NewTrust().ParseKeys(strings.NewReader("# header\n"+bad+"\n"), "k")
		if err == nil || !strings.Contains(err.Error(), "k:2") {
			t.Errorf("line %q: want an error naming k:2, got %v", bad, err)
		}
	}
	f := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(f, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := NewTrust().LoadKeys(f); err != nil {
		t.Fatal(err)
	}
	if err := NewTrust().LoadKeys(f + ".missing"); err == nil {
		t.Fatal("missing key file")
	}
}

func TestCertCacheBounded(t *testing.T) {
	p := testPKI(t)
	tr := NewTrust()
	tr.chains = newBounded[string, []*x509.Certificate](3, true)
	ids := p.Identities()
	for _, id := range ids {
		tr.Learn(id.Chain)
	}
	if tr.chains.len() != 3 {
		t.Fatalf("cache holds %d chains, cap 3", tr.chains.len())
	}
	last := ids[len(ids)-1]
	if tr.Chain(last.ID()) == nil || tr.Chain(ids[0].ID()) != nil {
		t.Fatal("the oldest chain is evicted first")
	}
}
