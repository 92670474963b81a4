package verify

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"fmt"
	"hash/maphash"
	"reflect"
	"slices"
	"testing"

	"github.com/roapproxy/roapproxy/decode"
)

// The caches and shortcuts of the per-message path must give what computing afresh gives.

func TestCertHashesMatchComputing(t *testing.T) {
	p := testPKI(t)
	v := newVerifier(p)
	certs := []*x509.Certificate{p.Root.Cert, p.CA.Cert, p.RIs[0].Cert, p.Devices[0].Cert}
	// The same certificate with one byte of its key changed: another issuer key, same subject.
	changed := *p.CA.Cert
	changed.RawSubjectPublicKeyInfo = bytes.Clone(changed.RawSubjectPublicKeyInfo)
	changed.RawSubjectPublicKeyInfo[len(changed.RawSubjectPublicKeyInfo)-5] ^= 1
	certs = append(certs, &changed)
	for round := 0; round < 2; round++ { // the second round is answered from the memo
		for i, c := range certs {
			for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
				name, key := v.certHashes(c, h)
				if !bytes.Equal(name, hashOf(h, c.RawSubject)) || !bytes.Equal(key, hashOf(h, spkiKeyBits(c))) {
					t.Fatalf("round %d, certificate %d, %v: memoized hashes differ from computed ones", round, i, h)
				}
			}
		}
	}
	if _, a := v.certHashes(p.CA.Cert, crypto.SHA1); bytes.Equal(a, func() []byte { _, k := v.certHashes(&changed, crypto.SHA1); return k }()) {
		t.Fatal("a changed key byte gave the same key hash")
	}

	// An entry whose map hash collides but whose bytes differ must be recomputed, not returned.
	c := p.RIs[0].Cert
	var mh maphash.Hash
	mh.SetSeed(v.seed)
	mh.WriteByte(byte(crypto.SHA1))
	mh.Write(c.RawSubject)
	mh.WriteByte(0)
	mh.Write(c.RawSubjectPublicKeyInfo)
	v.certHashMemos.put(mh.Sum64(), &certHashMemo{subject: p.Devices[0].Cert.RawSubject, spki: p.Devices[0].Cert.RawSubjectPublicKeyInfo,
		h: crypto.SHA1, name: []byte("wrong"), key: []byte("wrong")})
	if name, key := v.certHashes(c, crypto.SHA1); string(name) == "wrong" || string(key) == "wrong" {
		t.Fatal("a colliding memo entry for other bytes was returned")
	}
	// The responder check by key hash goes through the memo too.
	kh := sha1.Sum(spkiKeyBits(p.CA.Cert))
	byKey := &ocspParsed{responderKey: kh[:]}
	if !v.responderIs(byKey, p.CA.Cert) || v.responderIs(byKey, &changed) || v.responderIs(byKey, p.Root.Cert) {
		t.Fatal("responderIs by key hash is wrong")
	}
}

func TestKeyIDMemo(t *testing.T) {
	p := testPKI(t)
	tr := NewTrust()
	certs := []*x509.Certificate{p.Root.Cert, p.CA.Cert, p.RIs[0].Cert, p.Devices[0].Cert}
	// Another certificate object with one byte of its key changed must get its own identifier.
	changed := *p.RIs[0].Cert
	changed.RawSubjectPublicKeyInfo = bytes.Clone(changed.RawSubjectPublicKeyInfo)
	changed.RawSubjectPublicKeyInfo[len(changed.RawSubjectPublicKeyInfo)-5] ^= 1
	certs = append(certs, &changed)
	for round := 0; round < 2; round++ {
		for _, c := range certs {
			if got, want := tr.keyID(c), KeyID(c); got != want {
				t.Fatalf("round %d: keyID(%s) = %s; KeyID gives %s", round, certName(c), got, want)
			}
		}
	}
	if tr.keyID(&changed) == tr.keyID(p.RIs[0].Cert) {
		t.Fatal("a changed key byte kept the identifier")
	}
}

func TestLearnSameChainAgain(t *testing.T) {
	p := testPKI(t)
	tr := NewTrust()
	ri := p.RIs[0]
	chain := []*x509.Certificate{ri.Cert, p.CA.Cert}
	tr.Learn(chain)
	first := tr.Chain(KeyID(ri.Cert))
	tr.Learn(slices.Clone(chain)) // the same certificates in another slice
	if got := tr.Chain(KeyID(ri.Cert)); !slices.Equal(got, chain) || &got[0] != &first[0] {
		t.Fatal("learning the same chain again did not keep the remembered one")
	}
	chain[1] = p.Root.Cert // the caller's slice is not the remembered one
	if got := tr.Chain(KeyID(ri.Cert)); got[1] != p.CA.Cert {
		t.Fatal("the remembered chain aliases the caller's slice")
	}
	other := []*x509.Certificate{ri.Cert, p.CA.Cert, p.Root.Cert}
	tr.Learn(other)
	if got := tr.Chain(KeyID(ri.Cert)); !slices.Equal(got, other) {
		t.Fatal("a different chain for the same leaf was not remembered")
	}
	if got := tr.intermediatesFor(p.CA.Cert.RawSubject); len(got) != 1 || got[0] != p.CA.Cert {
		t.Fatalf("the CA is remembered %d times as an intermediate", len(got))
	}
}

// dedupeReference is dedupe as written before it scanned short lists instead of building maps.
func dedupeReference(m *decode.Message, fs []decode.Finding) []decode.Finding {
	type key struct {
		rule string
		sev  decode.Severity
	}
	theirs := map[key]bool{}
	for _, f := range m.Findings {
		theirs[key{f.Rule, f.Severity}] = true
	}
	seen := map[decode.Finding]bool{}
	out := fs[:0]
	for _, f := range fs {
		if seen[f] {
			continue
		}
		seen[f] = true
		if theirs[key{f.Rule, f.Severity}] {
			if r, ok := decode.LookupRule(f.Rule); ok && r.Package != "verify" {
				continue
			}
		}
		out = append(out, f)
	}
	return out
}

func TestDedupeMatchesReference(t *testing.T) {
	rules := []decode.Rule{decode.RuleBase64, decode.RuleCert, RuleSig, RuleChainWeak, RuleOCSPCoverage}
	sevs := []decode.Severity{decode.SevError, decode.SevWarning, decode.SevInfo}
	// A deterministic spread of lists, short and longer than the scan threshold, with repeats.
	mk := func(n, seed int) []decode.Finding {
		var fs []decode.Finding
		for i := 0; i < n; i++ {
			x := (i*i*7 + seed*13) % 11 // repeats within short lists too
			r := rules[x%len(rules)]
			fs = append(fs, r.AtSev(sevs[(x/5)%len(sevs)], fmt.Sprint("/p", x%3), "message %d", x%4))
		}
		return fs
	}
	for _, nm := range []int{0, 1, 3, 16, 17, 40} {
		for _, nf := range []int{0, 1, 2, 5, 16, 17, 50} {
			for seed := 0; seed < 4; seed++ {
				m := &decode.Message{Findings: mk(nm, seed+1)}
				fs := mk(nf, seed)
				got := dedupe(m, slices.Clone(fs))
				want := dedupeReference(m, slices.Clone(fs))
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%d message findings, %d findings, seed %d:\ngot  %v\nwant %v", nm, nf, seed, got, want)
				}
			}
		}
	}
}

func TestCertNameIsPercentQ(t *testing.T) {
	for _, cn := range []string{"", "roapproxy Test Root CA", `a "quoted" name`, "tab\tand\nnewline", "ünïcödé", "\u202eevil", "\xff\xfe", "back`tick"} {
		c := &x509.Certificate{}
		c.Subject.CommonName = cn
		c.Subject.Organization = []string{"org \"x\""}
		want := fmt.Sprintf("%q", c.Subject.CommonName)
		if cn == "" {
			want = fmt.Sprintf("%q", c.Subject.String())
		}
		if got := certName(c); got != want {
			t.Errorf("certName(%q) = %s; %%q gives %s", cn, got, want)
		}
	}
}
