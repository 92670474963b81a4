package decode_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/roapproxy/roapproxy/decode"
)

func TestOCSPBodiesDecodeAsOCSP(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 1024)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	ca, _ := x509.ParseCertificate(der)
	req, err := ocsp.CreateRequest(ca, ca, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		t.Fatal(err)
	}
	m := decode.Decode(req, decode.Hint{ContentType: "application/ocsp-request"})
	if m.Family != decode.FamilyOCSP || m.Kind != "ocspRequest" || m.ID("certificates") != "1" || m.Worst() != "" {
		t.Fatalf("request: %+v", m)
	}
	resp, err := ocsp.CreateResponse(ca, ca, ocsp.Response{Status: ocsp.Good, SerialNumber: ca.SerialNumber, ThisUpdate: time.Now()}, key)
	if err != nil {
		t.Fatal(err)
	}
	m = decode.Decode(resp, decode.Hint{ContentType: "application/ocsp-response"})
	if m.Kind != "ocspResponse" || m.Status != "successful" || len(m.OCSP) != 1 || m.Worst() != "" {
		t.Fatalf("response: %+v", m)
	}
	m = decode.Decode(ocsp.UnauthorizedErrorResponse, decode.Hint{ContentType: "application/ocsp-response"})
	if m.Status != "unauthorized" || !m.Has("OCSP-RESPONSE-STATUS") {
		t.Fatalf("error response: %+v", m)
	}
	m = decode.Decode([]byte("<html>oops</html>"), decode.Hint{ContentType: "application/ocsp-response"})
	if !m.Has("DEC-OCSP-BODY") || m.Worst() != decode.SevError {
		t.Fatalf("junk labelled OCSP: %+v", m)
	}
}

func TestDecoderCachesParsedCertificates(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 1024)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "device"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	body := func(nonce string) []byte {
		return decode.El("roap:leaveDomainRequest", decode.NS("roap", decode.NSROAP),
			decode.El("deviceID", keyID()), decode.El("riID", keyID()), decode.El("nonce", nonce),
			decode.El("time", "2026-01-01T00:00:00Z"), decode.El("domainID", "DOMAIN000001"),
			decode.El("certificateChain", decode.El("certificate", base64.StdEncoding.EncodeToString(der))),
			decode.El("signature", "AAAA")).Bytes()
	}
	dec := decode.NewDecoder(decode.DefaultLimits)
	a := dec.Decode(body("AAAAAAAAAAAAAAAAAAAAAA=="), decode.Hint{})
	b := dec.Decode(body("BBBBBBBBBBBBBBBBBBBBBB=="), decode.Hint{})
	if len(a.Chains) != 1 || len(b.Chains) != 1 || len(a.Chains[0].Certs) != 1 || len(b.Chains[0].Certs) != 1 {
		t.Fatalf("chains: %+v %+v", a.Chains, b.Chains)
	}
	if a.Chains[0].Certs[0] != b.Chains[0].Certs[0] {
		t.Fatal("the same certificate in two messages was parsed twice")
	}
	// The package-level Decode keeps no state: a fresh parse each time, of the same certificate.
	c := decode.Decode(body("CCCCCCCCCCCCCCCCCCCCCC=="), decode.Hint{})
	if c.Chains[0].Certs[0] == a.Chains[0].Certs[0] || !c.Chains[0].Certs[0].Equal(a.Chains[0].Certs[0]) {
		t.Fatal("package-level Decode must parse afresh, to the same certificate")
	}
}

func keyID() *decode.Node {
	return decode.El("keyIdentifier", decode.NS("xsi", decode.NSXSI), decode.A("algorithm", decode.AlgSHA1), decode.A("xsi:type", "roap:X509SPKIHash"),
		decode.El("hash", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="))
}

func TestNonXMLContentIsNotAnError(t *testing.T) {
	page := []byte("<!DOCTYPE html><html><body><p>hello<br></body></html>")
	if m := decode.Decode(page, decode.Hint{ContentType: "text/html; charset=utf-8"}); m.Worst() != decode.SevInfo || m.Kind != "unknown" {
		t.Fatalf("an HTML page: %+v", m.Findings)
	}
	for _, ct := range []string{"", "application/xml", decode.MIMEPDU} {
		if m := decode.Decode(page, decode.Hint{ContentType: ct}); m.Worst() != decode.SevError {
			t.Fatalf("content type %q: the same bytes must be an error: %+v", ct, m.Findings)
		}
	}
}
