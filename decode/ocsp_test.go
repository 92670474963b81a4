package decode_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
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
