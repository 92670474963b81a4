package verify

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/sim"
)

// Independent implementations: a signature made by the openssl command over xmllint's exclusive
// canonicalization, and OCSP responses made by `openssl ocsp`, judged by this package.

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

func run(t *testing.T, dir string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeKey(t *testing.T, path string, id *sim.Identity) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(id.Key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, path, "PRIVATE KEY", der)
}

func TestOpenSSLSignatureOverXmllintC14N(t *testing.T) {
	needTools(t, "openssl", "xmllint")
	p := testPKI(t)
	ri, dev := p.RIs[0], p.Devices[0]
	dir := t.TempDir()
	writeKey(t, filepath.Join(dir, "key.pem"), ri)

	var chain strings.Builder
	for _, c := range ri.Chain {
		chain.WriteString("<certificate>" + b64s(c.Raw) + "</certificate>")
	}
	// Not canonical on purpose: XML declaration, namespace declarations on the root, single
	// quotes, attribute order, an empty-element tag, whitespace between elements. (No comment:
	// xmllint's --exc-c14n keeps comments, ROAP's canonical form does not.)
	doc := `<?xml version="1.0" encoding="UTF-8"?>
<roap:TokenDeliveryResponse xmlns:xsi="` + decode.NSXSI + `" status='Success' xmlns:roap="` + decode.NSROAP + `">
  <deviceID><keyIdentifier xsi:type="roap:X509SPKIHash" algorithm="` + decode.AlgSHA1 + `"><hash>` + dev.ID() + `</hash></keyIdentifier></deviceID>
  <riID><keyIdentifier xsi:type="roap:X509SPKIHash" algorithm="` + decode.AlgSHA1 + `"><hash>` + ri.ID() + `</hash></keyIdentifier></riID>
  <tokenDeliveryID>td-openssl</tokenDeliveryID>
  <nonce>` + nonce("openssl") + `</nonce>
  <tokenQuantity>7</tokenQuantity>
  <certificateChain>` + chain.String() + `</certificateChain>
  <extensions><extension xsi:type="roap:Movable"/></extensions>
</roap:TokenDeliveryResponse>
`
	if err := os.WriteFile(filepath.Join(dir, "in.xml"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	canon := run(t, dir, "xmllint", "--exc-c14n", "in.xml")
	if err := os.WriteFile(filepath.Join(dir, "c14n.xml"), canon, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, dir, "openssl", "dgst", "-sha1", "-sign", "key.pem", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:20", "-out", "sig.bin", "c14n.xml")
	sig, err := os.ReadFile(filepath.Join(dir, "sig.bin"))
	if err != nil {
		t.Fatal(err)
	}
	sigEl := "<signature>" + b64s(sig) + "</signature>"
	end := "</roap:TokenDeliveryResponse>"
	insert := func(b []byte) []byte {
		i := bytes.LastIndex(b, []byte(end))
		if i < 0 {
			t.Fatalf("no end tag in %q", b)
		}
		return append(append(append([]byte(nil), b[:i]...), sigEl...), b[i:]...)
	}
	v := newVerifier(p)

	// Sent canonical, as ROAP requires: verifies over the bytes as sent.
	m := decHint(insert(canon), "tokenRequest", false)
	fs := v.Check(m, Context{Time: t0})
	noErrors(t, fs)
	wantNot(t, fs, "XBS-9.2.3-SIG")
	wantNot(t, fs, "ROAP-SIG-REENCODED")
	wantNot(t, fs, "ROAP-SIG-SALT")

	// Sent as the non-canonical original: only this package's own canonicalization of the parsed
	// message reproduces what openssl signed, which shows it agrees with xmllint's.
	m = decHint(insert([]byte(doc)), "tokenRequest", false)
	if got := m.CanonicalWithoutSignature(); !bytes.Equal(got, canon) {
		t.Fatalf("exclusive c14n differs from xmllint's:\n got %s\nwant %s", got, canon)
	}
	fs = v.Check(m, Context{Time: t0})
	want(t, fs, "ROAP-SIG-REENCODED", decode.SevWarning)
	wantNot(t, fs, "XBS-9.2.3-SIG")

	// And a byte changed after openssl signed fails.
	bad := bytes.Replace(insert(canon), []byte("<tokenQuantity>7<"), []byte("<tokenQuantity>8<"), 1)
	want(t, v.Check(decHint(bad, "tokenRequest", false), Context{Time: t0}), "XBS-9.2.3-SIG", decode.SevError)
}

func TestOpenSSLOCSPResponder(t *testing.T) {
	needTools(t, "openssl")
	// openssl ocsp stamps responses with the wall clock, so this PKI lives around now.
	now := time.Now().UTC()
	p, err := sim.NewPKI(sim.PKIOptions{Bits: 1024, Now: now, Devices: 1, RIs: 1})
	if err != nil {
		t.Fatal(err)
	}
	ri := p.RIs[0]
	dir := t.TempDir()
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", p.CA.Cert.Raw)
	writePEM(t, filepath.Join(dir, "ri.pem"), "CERTIFICATE", ri.Cert.Raw)
	writePEM(t, filepath.Join(dir, "ocsp.pem"), "CERTIFICATE", p.OCSP.Cert.Raw)
	writeKey(t, filepath.Join(dir, "ocsp.key"), p.OCSP)
	writeKey(t, filepath.Join(dir, "ca.key"), p.CA)
	run(t, dir, "openssl", "ocsp", "-issuer", "ca.pem", "-cert", "ri.pem", "-no_nonce", "-reqout", "req.der")

	serial := strings.ToUpper(ri.Cert.SerialNumber.Text(16))
	if len(serial)%2 == 1 {
		serial = "0" + serial
	}
	expiry := ri.Cert.NotAfter.UTC().Format("060102150405Z")
	subject := "/CN=" + ri.Cert.Subject.CommonName
	respond := func(t *testing.T, line string, signer, key string) []byte {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "index.txt"), []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(filepath.Join(dir, "resp.der"))
		run(t, dir, "openssl", "ocsp", "-index", "index.txt", "-CA", "ca.pem", "-rsigner", signer, "-rkey", key,
			"-reqin", "req.der", "-respout", "resp.der", "-ndays", "1")
		der, err := os.ReadFile(filepath.Join(dir, "resp.der"))
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	check := func(t *testing.T, der []byte) []decode.Finding {
		t.Helper()
		tr := NewTrust()
		tr.AddAnchors(p.Roots()...)
		v := New(tr, Options{Clock: func() time.Time { return now }})
		s := tdr{ri: ri, dev: p.Devices[0].ID(), tdid: "td-ocsp", nonce: nonce("o"), qty: 1, ocsp: [][]byte{der}}
		return v.Check(decHint(s.build(t, signPSS20), "tokenRequest", false), Context{Time: now.Add(time.Minute)})
	}

	t.Run("good, delegated responder", func(t *testing.T) {
		fs := check(t, respond(t, fmt.Sprintf("V\t%s\t\t%s\tunknown\t%s", expiry, serial, subject), "ocsp.pem", "ocsp.key"))
		noErrors(t, fs)
		wantNot(t, fs, "XBS-9.2.3-OCSP-GOOD")
	})
	t.Run("good, signed by the CA", func(t *testing.T) {
		fs := check(t, respond(t, fmt.Sprintf("V\t%s\t\t%s\tunknown\t%s", expiry, serial, subject), "ca.pem", "ca.key"))
		noErrors(t, fs)
	})
	t.Run("revoked", func(t *testing.T) {
		revoked := now.Add(-time.Hour).Format("060102150405Z")
		fs := check(t, respond(t, fmt.Sprintf("R\t%s\t%s,keyCompromise\t%s\tunknown\t%s", expiry, revoked, serial, subject), "ocsp.pem", "ocsp.key"))
		want(t, fs, "OCSP-REVOKED", decode.SevError)
		want(t, fs, "XBS-9.2.3-OCSP-GOOD", decode.SevError)
		if f := find(fs, "OCSP-REVOKED"); !strings.Contains(f.Message, "keyCompromise") {
			t.Fatalf("reason lost: %s", f.Message)
		}
	})
	t.Run("judged later than nextUpdate", func(t *testing.T) {
		der := respond(t, fmt.Sprintf("V\t%s\t\t%s\tunknown\t%s", expiry, serial, subject), "ocsp.pem", "ocsp.key")
		tr := NewTrust()
		tr.AddAnchors(p.Roots()...)
		v := New(tr, Options{})
		s := tdr{ri: ri, dev: p.Devices[0].ID(), tdid: "td-ocsp", nonce: nonce("o"), qty: 1, ocsp: [][]byte{der}}
		fs := v.Check(decHint(s.build(t, signPSS20), "tokenRequest", false), Context{Time: now.Add(49 * time.Hour)})
		want(t, fs, "OCSP-STALE", decode.SevError)
	})
}
