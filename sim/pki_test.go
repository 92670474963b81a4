package sim

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// One PKI per test binary and variant: key generation is the slow part.
var (
	defaultPKIOnce sync.Once
	defaultPKI     *PKI
	defaultPKIErr  error

	sha1PKIOnce sync.Once
	sha1PKI     *PKI
	sha1PKIErr  error
	sha1PKINow  = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
)

// testPKI is the default PKI: 2048-bit keys, SHA-256 signatures, wall clock.
func testPKI(tb testing.TB) *PKI {
	tb.Helper()
	defaultPKIOnce.Do(func() { defaultPKI, defaultPKIErr = NewPKI(PKIOptions{}) })
	if defaultPKIErr != nil {
		tb.Fatal(defaultPKIErr)
	}
	return defaultPKI
}

// testSHA1PKI is a fielded-style PKI: 1024-bit keys, SHA-1 signatures, a fixed clock and
// non-default identity counts.
func testSHA1PKI(tb testing.TB) *PKI {
	tb.Helper()
	sha1PKIOnce.Do(func() {
		sha1PKI, sha1PKIErr = NewPKI(PKIOptions{Bits: 1024, SHA1: true, Now: sha1PKINow, Devices: 1, RIs: 3})
	})
	if sha1PKIErr != nil {
		tb.Fatal(sha1PKIErr)
	}
	return sha1PKI
}

func pkiTestLeaves(p *PKI) []*Identity {
	var out []*Identity
	out = append(out, p.RIs...)
	out = append(out, p.Devices...)
	return append(out, p.SCEDevice, p.DEA, p.OCSP)
}

func pkiTestExt(c *x509.Certificate, oid asn1.ObjectIdentifier) (pkix.Extension, bool) {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return e, true
		}
	}
	return pkix.Extension{}, false
}

var pkiTestOIDKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 15}

func TestPKIShape(t *testing.T) {
	p := testPKI(t)
	if len(p.RIs) != 2 || len(p.Devices) != 2 {
		t.Fatalf("default counts: %d RIs, %d devices; want 2 and 2", len(p.RIs), len(p.Devices))
	}
	if p.Opts.Bits != 2048 || p.Opts.SHA1 {
		t.Errorf("default options %+v", p.Opts)
	}

	// Root: self-signed CA; CA: issued by the root, path length 0.
	if err := p.Root.Cert.CheckSignatureFrom(p.Root.Cert); err != nil {
		t.Errorf("root not self-signed: %v", err)
	}
	if !p.Root.Cert.IsCA || !p.CA.Cert.IsCA || p.CA.Cert.MaxPathLen != 0 || !p.CA.Cert.MaxPathLenZero {
		t.Errorf("CA flags: root IsCA %v, CA IsCA %v MaxPathLen %d", p.Root.Cert.IsCA, p.CA.Cert.IsCA, p.CA.Cert.MaxPathLen)
	}
	if err := p.CA.Cert.CheckSignatureFrom(p.Root.Cert); err != nil {
		t.Errorf("CA not issued by root: %v", err)
	}
	if len(p.CA.Chain) != 1 || !p.CA.Chain[0].Equal(p.CA.Cert) {
		t.Errorf("CA chain has %d certificates, want only the CA", len(p.CA.Chain))
	}
	if r := p.Roots(); len(r) != 1 || !r[0].Equal(p.Root.Cert) {
		t.Errorf("Roots() = %v", r)
	}

	roots := x509.NewCertPool()
	roots.AddCert(p.Root.Cert)
	serials := map[string]string{}
	ids := map[string]string{}
	for _, id := range p.Identities() {
		if prev, dup := serials[id.Cert.SerialNumber.String()]; dup {
			t.Errorf("%s and %s share serial %v", prev, id.Name, id.Cert.SerialNumber)
		}
		serials[id.Cert.SerialNumber.String()] = id.Name
		if id.Cert.SerialNumber.Sign() <= 0 || id.Cert.SerialNumber.BitLen() > 128 {
			t.Errorf("%s: serial %v not a positive 128-bit number", id.Name, id.Cert.SerialNumber)
		}
		if id.Cert.SignatureAlgorithm != x509.SHA256WithRSA {
			t.Errorf("%s signed with %v", id.Name, id.Cert.SignatureAlgorithm)
		}
		if !id.Key.PublicKey.Equal(id.Cert.PublicKey) || id.Key.N.BitLen() != 2048 {
			t.Errorf("%s: key does not match certificate or is not 2048-bit", id.Name)
		}

		// ROAP key identifier: base64 of the 20-byte SHA-1 of the DER SubjectPublicKeyInfo.
		raw, err := base64.StdEncoding.DecodeString(id.ID())
		want := sha1.Sum(id.Cert.RawSubjectPublicKeyInfo)
		if err != nil || !bytes.Equal(raw, want[:]) || len(raw) != 20 {
			t.Errorf("%s: ID %q is not base64 SHA-1 of the SPKI", id.Name, id.ID())
		}
		if prev, dup := ids[id.ID()]; dup {
			t.Errorf("%s and %s share ID", prev, id.Name)
		}
		ids[id.ID()] = id.Name
	}

	for _, id := range pkiTestLeaves(p) {
		// Chain: leaf, CA; no root. Each link verifies.
		if len(id.Chain) != 2 || !id.Chain[0].Equal(id.Cert) || !id.Chain[1].Equal(p.CA.Cert) {
			t.Errorf("%s: chain is not [leaf, CA]", id.Name)
			continue
		}
		for i := 0; i+1 < len(id.Chain); i++ {
			if err := id.Chain[i].CheckSignatureFrom(id.Chain[i+1]); err != nil {
				t.Errorf("%s: link %d: %v", id.Name, i, err)
			}
		}
		if err := id.Chain[len(id.Chain)-1].CheckSignatureFrom(p.Root.Cert); err != nil {
			t.Errorf("%s: last link to root: %v", id.Name, err)
		}
		inter := x509.NewCertPool()
		inter.AddCert(id.Chain[1])
		if _, err := id.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s: x509 path validation: %v", id.Name, err)
		}
		if id.Cert.IsCA {
			t.Errorf("%s: leaf is a CA", id.Name)
		}
		if id.Cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			t.Errorf("%s: no digitalSignature key usage", id.Name)
		}
		der := id.ChainDER()
		if len(der) != len(id.Chain) || !bytes.Equal(der[0], id.Cert.Raw) {
			t.Errorf("%s: ChainDER does not match Chain", id.Name)
		}
	}

	// Key purposes, each present or absent as the role demands.
	type want struct {
		id      *Identity
		has     []asn1.ObjectIdentifier
		hasNot  []asn1.ObjectIdentifier
		crit    bool
		ocspEKU bool
	}
	all := []asn1.ObjectIdentifier{OIDKPRightsIssuer, OIDKPDRMAgent, OIDKPSCEDRMAgent, OIDKPDEANetwork}
	others := func(has ...asn1.ObjectIdentifier) []asn1.ObjectIdentifier {
		var out []asn1.ObjectIdentifier
		for _, o := range all {
			if !slices.ContainsFunc(has, o.Equal) {
				out = append(out, o)
			}
		}
		return out
	}
	var cases []want
	for _, id := range p.RIs {
		cases = append(cases, want{id, []asn1.ObjectIdentifier{OIDKPRightsIssuer}, others(OIDKPRightsIssuer), true, false})
	}
	for _, id := range p.Devices {
		cases = append(cases, want{id, []asn1.ObjectIdentifier{OIDKPDRMAgent}, others(OIDKPDRMAgent), false, false})
	}
	cases = append(cases,
		want{p.SCEDevice, []asn1.ObjectIdentifier{OIDKPDRMAgent, OIDKPSCEDRMAgent}, others(OIDKPDRMAgent, OIDKPSCEDRMAgent), false, false},
		want{p.DEA, []asn1.ObjectIdentifier{OIDKPDEANetwork}, others(OIDKPDEANetwork), false, false},
		want{p.OCSP, nil, all, false, true},
	)
	for _, c := range cases {
		got := c.id.Cert.UnknownExtKeyUsage
		for _, o := range c.has {
			if !slices.ContainsFunc(got, o.Equal) {
				t.Errorf("%s: key purpose %v missing (have %v)", c.id.Name, o, got)
			}
		}
		for _, o := range c.hasNot {
			if slices.ContainsFunc(got, o.Equal) {
				t.Errorf("%s: unexpected key purpose %v", c.id.Name, o)
			}
		}
		if c.ocspEKU != slices.Contains(c.id.Cert.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) || (!c.ocspEKU && len(c.id.Cert.ExtKeyUsage) > 0) {
			t.Errorf("%s: ExtKeyUsage %v", c.id.Name, c.id.Cert.ExtKeyUsage)
		}
		eku, ok := pkiTestExt(c.id.Cert, oidExtExtKeyUsage)
		if !ok || eku.Critical != c.crit {
			t.Errorf("%s: EKU extension present %v critical %v, want critical %v", c.id.Name, ok, eku.Critical, c.crit)
		}
	}
	for _, id := range p.RIs {
		// CMLA RI profile: KeyUsage present and critical with digitalSignature.
		if ku, ok := pkiTestExt(id.Cert, pkiTestOIDKeyUsage); !ok || !ku.Critical || id.Cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			t.Errorf("%s: KeyUsage not critical digitalSignature", id.Name)
		}
	}
	if _, ok := pkiTestExt(p.OCSP.Cert, oidExtOCSPNoCheck); !ok {
		t.Errorf("OCSP responder certificate lacks id-pkix-ocsp-nocheck")
	}
}

func TestPKISHA1(t *testing.T) {
	p := testSHA1PKI(t)
	if len(p.RIs) != 3 || len(p.Devices) != 1 {
		t.Fatalf("counts: %d RIs, %d devices; want 3 and 1", len(p.RIs), len(p.Devices))
	}
	for _, id := range p.Identities() {
		if id.Cert.SignatureAlgorithm != x509.SHA1WithRSA {
			t.Errorf("%s signed with %v, want SHA1-RSA", id.Name, id.Cert.SignatureAlgorithm)
		}
		if id.Key.N.BitLen() != 1024 {
			t.Errorf("%s: %d-bit key, want 1024", id.Name, id.Key.N.BitLen())
		}
		if !id.Cert.NotBefore.Equal(sha1PKINow.Add(-time.Hour)) || !id.Cert.NotAfter.Equal(sha1PKINow.AddDate(2, 0, 0)) {
			t.Errorf("%s: validity [%v, %v]", id.Name, id.Cert.NotBefore, id.Cert.NotAfter)
		}
	}
	for _, id := range pkiTestLeaves(p) {
		// x509 refuses SHA-1 here, which is why CheckIssuedBy exists.
		var insecure x509.InsecureAlgorithmError
		if err := id.Chain[0].CheckSignatureFrom(id.Chain[1]); !errors.As(err, &insecure) {
			t.Errorf("%s: CheckSignatureFrom on a SHA-1 link = %v, want InsecureAlgorithmError", id.Name, err)
		}
		if err := CheckIssuedBy(id.Chain[0], id.Chain[1]); err != nil {
			t.Errorf("%s: %v", id.Name, err)
		}
		if err := CheckIssuedBy(id.Chain[1], p.Root.Cert); err != nil {
			t.Errorf("%s: CA link: %v", id.Name, err)
		}
		// A certificate from another PKI must not pass.
		if err := CheckIssuedBy(id.Cert, testPKI(t).CA.Cert); err == nil {
			t.Errorf("%s: CheckIssuedBy accepted a foreign CA", id.Name)
		}
	}
	// Same issuer name, wrong key: the name check alone must not suffice.
	if err := CheckIssuedBy(p.RIs[0].Cert, testPKI(t).CA.Cert); err == nil {
		t.Error("CheckIssuedBy accepted an issuer with the same name but another key")
	}
}

func TestPKINewLeaf(t *testing.T) {
	p := testPKI(t)
	past := time.Now().AddDate(-1, 0, 0)
	expired, err := p.NewLeaf("expired-ri", LeafOptions{KeyPurposes: []asn1.ObjectIdentifier{OIDKPRightsIssuer}, NotBefore: past, NotAfter: past.AddDate(0, 1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if !expired.Cert.NotAfter.Before(time.Now()) {
		t.Errorf("NotAfter %v not in the past", expired.Cert.NotAfter)
	}

	bare, err := p.NewLeaf("no-purpose", LeafOptions{Key: p.RIs[0].Key, NoKeyUsage: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pkiTestExt(bare.Cert, oidExtExtKeyUsage); ok {
		t.Error("leaf without key purposes has an EKU extension")
	}
	if _, ok := pkiTestExt(bare.Cert, pkiTestOIDKeyUsage); ok {
		t.Error("NoKeyUsage leaf has a KeyUsage extension")
	}
	if bare.ID() != p.RIs[0].ID() {
		t.Error("a leaf for an existing key must keep the key's ID")
	}

	small, err := p.NewLeaf("small-sha1", LeafOptions{Bits: 1024, SHA1: true, KeyPurposes: []asn1.ObjectIdentifier{OIDKPDRMAgent}})
	if err != nil {
		t.Fatal(err)
	}
	if small.Key.N.BitLen() != 1024 || small.Cert.SignatureAlgorithm != x509.SHA1WithRSA {
		t.Errorf("got %d bits %v", small.Key.N.BitLen(), small.Cert.SignatureAlgorithm)
	}
	if err := CheckIssuedBy(small.Cert, p.CA.Cert); err != nil {
		t.Error(err)
	}

	byRoot, err := p.NewLeaf("root-issued", LeafOptions{Issuer: p.Root, OCSPSigning: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(byRoot.Chain) != 1 || byRoot.Cert.CheckSignatureFrom(p.Root.Cert) != nil {
		t.Errorf("root-issued leaf: chain of %d, want the leaf alone and a root signature", len(byRoot.Chain))
	}
	if !slices.Contains(byRoot.Cert.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		t.Error("OCSPSigning option ignored")
	}

	sub, err := p.NewLeaf("sub", LeafOptions{Issuer: byRoot}) // not a CA, but the chain logic must hold
	if err != nil {
		t.Fatal(err)
	}
	if len(sub.Chain) != 2 || !sub.Chain[1].Equal(byRoot.Cert) {
		t.Errorf("chain under a non-root issuer has %d certificates", len(sub.Chain))
	}
	deeper, err := p.NewLeaf("deeper", LeafOptions{Issuer: sub, Key: sub.Key})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(deeper.Chain, []*x509.Certificate{deeper.Cert, sub.Cert, byRoot.Cert}, (*x509.Certificate).Equal) {
		t.Errorf("chain two levels under a non-root issuer has %d certificates, want 3", len(deeper.Chain))
	}
}

func TestPKIKeyUnder1024(t *testing.T) {
	if strings.Contains(os.Getenv("GODEBUG"), "rsa1024min=0") {
		t.Skip("GODEBUG=rsa1024min=0 is set: small keys are allowed")
	}
	_, err := testPKI(t).NewLeaf("tiny", LeafOptions{Bits: 512})
	if err == nil || !strings.Contains(err.Error(), "GODEBUG=rsa1024min=0") {
		t.Fatalf("512-bit key: err = %v, want one naming GODEBUG=rsa1024min=0", err)
	}
	if _, err := NewPKI(PKIOptions{Bits: 512}); err == nil || !strings.Contains(err.Error(), "GODEBUG=rsa1024min=0") {
		t.Fatalf("NewPKI 512: err = %v", err)
	}
}

func TestPKIWriteLoad(t *testing.T) {
	for _, variant := range []struct {
		name string
		pki  func(testing.TB) *PKI
	}{{"sha256", testPKI}, {"sha1", testSHA1PKI}} {
		t.Run(variant.name, func(t *testing.T) {
			p := variant.pki(t)
			dir := filepath.Join(t.TempDir(), "pki")
			// A pre-existing, too open directory and key file must be tightened.
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "ri-1.key"), []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := p.Write(dir); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(dir)
			if err != nil || st.Mode().Perm() != 0o700 {
				t.Fatalf("dir mode %v (%v), want 0700", st.Mode().Perm(), err)
			}

			want := []string{"root.pem", "root.key"}
			for _, id := range p.Identities()[1:] {
				want = append(want, id.Name+".pem", id.Name+".key", id.Name+"-chain.pem")
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
				info, err := e.Info()
				if err != nil {
					t.Fatal(err)
				}
				wantMode := os.FileMode(0o644)
				if strings.HasSuffix(e.Name(), ".key") {
					wantMode = 0o600
				}
				if info.Mode().Perm() != wantMode {
					t.Errorf("%s: mode %v, want %v", e.Name(), info.Mode().Perm(), wantMode)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("files %v\nwant %v", got, want)
			}

			q, err := LoadPKI(dir)
			if err != nil {
				t.Fatal(err)
			}
			if q.Opts.Bits != p.Opts.Bits || q.Opts.SHA1 != p.Opts.SHA1 || q.Opts.RIs != len(p.RIs) || q.Opts.Devices != len(p.Devices) {
				t.Errorf("loaded options %+v, written %+v", q.Opts, p.Opts)
			}
			pi, qi := p.Identities(), q.Identities()
			if len(pi) != len(qi) {
				t.Fatalf("loaded %d identities, wrote %d", len(qi), len(pi))
			}
			for i := range pi {
				a, b := pi[i], qi[i]
				if a.Name != b.Name || !a.Cert.Equal(b.Cert) || !a.Key.Equal(b.Key) || a.ID() != b.ID() {
					t.Errorf("identity %d: wrote %s, loaded %s (or cert/key differ)", i, a.Name, b.Name)
				}
				if !slices.EqualFunc(a.ChainDER(), b.ChainDER(), bytes.Equal) {
					t.Errorf("%s: chain differs after load", a.Name)
				}
			}

			// A key that does not belong to its certificate is refused.
			k, err := os.ReadFile(filepath.Join(dir, "device-1.key"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "ri-1.key"), k, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadPKI(dir); err == nil || !strings.Contains(err.Error(), "ri-1") {
				t.Errorf("mismatched key: err = %v", err)
			}
		})
	}
}

// TestPKIOpenSSL checks the written files with an implementation that is not Go's.
func TestPKIOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	for _, variant := range []struct {
		name  string
		pki   func(testing.TB) *PKI
		extra []string
	}{
		{"sha256", testPKI, nil},
		// OpenSSL rejects SHA-1 signatures and 1024-bit keys from security level 2 on ("CA
		// signature digest algorithm too weak", "EE key too small"); some builds and configurations
		// default to 2. Level 0 keeps the check about the chain, not about today's policy.
		{"sha1", testSHA1PKI, []string{"-auth_level", "0"}},
	} {
		t.Run(variant.name, func(t *testing.T) {
			p := variant.pki(t)
			dir := t.TempDir()
			if err := p.Write(dir); err != nil {
				t.Fatal(err)
			}
			openssl := func(args ...string) (string, error) {
				cmd := exec.Command("openssl", args...)
				cmd.Dir = dir
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			verify := func(extra ...string) []string {
				args := append([]string{"verify"}, variant.extra...)
				if variant.name == "sha1" {
					// The fixed clock of this PKI lies in the past; verify at that time.
					args = append(args, "-attime", "1709294400")
				}
				return append(args, extra...)
			}
			for _, id := range pkiTestLeaves(p) {
				out, err := openssl(verify("-CAfile", "root.pem", "-untrusted", "ca.pem", id.Name+".pem")...)
				if err != nil || !strings.Contains(out, id.Name+".pem: OK") {
					t.Errorf("openssl verify %s: %v\n%s", id.Name, err, out)
				}
				out, err = openssl(verify("-CAfile", "root.pem", "-untrusted", id.Name+"-chain.pem", id.Name+".pem")...)
				if err != nil {
					t.Errorf("openssl verify %s with its chain file: %v\n%s", id.Name, err, out)
				}
			}
			// Without the intermediate there is no path: the check above is a real one.
			if out, err := openssl(verify("-CAfile", "root.pem", "ri-1.pem")...); err == nil {
				t.Errorf("openssl verified ri-1 without the CA:\n%s", out)
			}
			if variant.name == "sha1" {
				out, err := openssl("verify", "-attime", "1709294400", "-CAfile", "root.pem", "-untrusted", "ca.pem", "ri-1.pem")
				t.Logf("SHA-1/1024 chain at this openssl's default security level: err=%v %s", err, strings.TrimSpace(out))
			}

			for _, c := range []struct {
				file      string
				want      []string
				notWanted []string
			}{
				{"ri-1.pem", []string{"critical", "2.23.43.6.1.1\n"}, []string{"2.23.43.6.1.2"}},
				{"device-1.pem", []string{"2.23.43.6.1.2"}, []string{"2.23.43.6.1.1\n", "2.23.43.6.1.4", "critical"}},
				{"sce-device.pem", []string{"2.23.43.6.1.2", "2.23.43.6.1.4"}, nil},
				{"dea.pem", []string{"2.23.43.6.1.11"}, []string{"2.23.43.6.1.2"}},
				{"ocsp.pem", []string{"OCSP Signing"}, []string{"2.23.43"}},
			} {
				out, err := openssl("x509", "-noout", "-ext", "extendedKeyUsage", "-in", c.file)
				if err != nil {
					t.Errorf("openssl x509 %s: %v\n%s", c.file, err, out)
					continue
				}
				out = strings.ReplaceAll(out, ", ", "\n") + "\n"
				for _, w := range c.want {
					if !strings.Contains(out, w) {
						t.Errorf("%s EKU lacks %q:\n%s", c.file, w, out)
					}
				}
				for _, w := range c.notWanted {
					if strings.Contains(out, w) {
						t.Errorf("%s EKU has %q:\n%s", c.file, w, out)
					}
				}
			}
			out, err := openssl("x509", "-noout", "-ext", "keyUsage", "-in", "ri-1.pem")
			if err != nil || !strings.Contains(out, "critical") || !strings.Contains(out, "Digital Signature") {
				t.Errorf("ri-1 keyUsage: %v\n%s", err, out)
			}
			// openssl reads the key files too, and they match their certificates.
			a, err1 := openssl("pkey", "-in", "ri-1.key", "-pubout")
			b, err2 := openssl("x509", "-in", "ri-1.pem", "-noout", "-pubkey")
			if err1 != nil || err2 != nil || a != b {
				t.Errorf("ri-1.key public half differs from ri-1.pem: %v %v\n%s\n%s", err1, err2, a, b)
			}
		})
	}
}
