package sim

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// ocspTestPost sends a DER request to url and returns the DER response.
func ocspTestPost(t *testing.T, url string, req []byte) []byte {
	t.Helper()
	resp, err := http.Post(url, "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/ocsp-response" {
		t.Fatalf("HTTP %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func ocspTestNonce(t *testing.T) []byte {
	n := make([]byte, 16)
	if _, err := rand.Read(n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The test reads responses with its own RFC 6960 structures and checks signatures with crypto/x509,
// so that it does not share a parser with the responder; OpenSSL (TestOCSPOpenSSL) is the fully
// independent judge. golang.org/x/crypto/ocsp is not used: the module does not require
// golang.org/x/crypto.

type ocspTestCertID struct {
	Alg      pkix.AlgorithmIdentifier
	NameHash []byte
	KeyHash  []byte
	Serial   *big.Int
}

type ocspTestSingle struct {
	ID     ocspTestCertID
	Status asn1.RawValue
	This   time.Time        `asn1:"generalized"`
	Next   time.Time        `asn1:"generalized,explicit,tag:0,optional"`
	Exts   []pkix.Extension `asn1:"explicit,tag:1,optional"`
}

type ocspTestData struct {
	Version   int `asn1:"explicit,tag:0,optional,default:0"`
	Responder asn1.RawValue
	Produced  time.Time `asn1:"generalized"`
	Singles   []ocspTestSingle
	Exts      []pkix.Extension `asn1:"explicit,tag:1,optional"`
}

// ocspTestResp is what the tests need from a response.
type ocspTestResp struct {
	Status                             int // 0 good, 1 revoked, 2 unknown
	Serial                             *big.Int
	IssuerHash                         crypto.Hash
	ProducedAt, ThisUpdate, NextUpdate time.Time
	RevokedAt                          time.Time
	Reason                             int // -1 when absent
	Certs                              []*x509.Certificate
	Certificate                        *x509.Certificate // Certs[0], the signer
	RawResponderName                   []byte            // DER Name of a byName responderID
	SignatureAlgorithm                 x509.SignatureAlgorithm
	Nonce                              []byte // extnValue of the nonce response extension
	HasNonce                           bool
	tbs, sig                           []byte
}

const (
	ocspTestGood    = 0
	ocspTestRevoked = 1
	ocspTestUnknown = 2
)

// CheckSignatureFrom verifies the response signature with c's key.
func (r *ocspTestResp) CheckSignatureFrom(c *x509.Certificate) error {
	return c.CheckSignature(r.SignatureAlgorithm, r.tbs, r.sig)
}

type ocspTestStatusError int

func (e ocspTestStatusError) Error() string { return fmt.Sprintf("OCSP responseStatus %d", int(e)) }

// ocspTestParse decodes a successful OCSPResponse and picks the SingleResponse for cert (the
// first one when cert is nil). It verifies the signature with the first included certificate and
// that certificate's signature by issuer or, when no certificate is included, the response
// signature by issuer; issuer nil skips the issuer checks.
func ocspTestParse(der []byte, cert, issuer *x509.Certificate) (*ocspTestResp, error) {
	var outer struct {
		Status asn1.Enumerated
		Bytes  struct {
			Type   asn1.ObjectIdentifier
			Octets []byte
		} `asn1:"explicit,tag:0,optional"`
	}
	if rest, err := asn1.Unmarshal(der, &outer); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("OCSPResponse: %v (%d trailing bytes)", err, len(rest))
	}
	if outer.Status != 0 {
		return nil, ocspTestStatusError(outer.Status)
	}
	if !outer.Bytes.Type.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}) {
		return nil, fmt.Errorf("response type %v", outer.Bytes.Type)
	}
	var basic struct {
		TBS   asn1.RawValue
		Alg   pkix.AlgorithmIdentifier
		Sig   asn1.BitString
		Certs []asn1.RawValue `asn1:"explicit,tag:0,optional"`
	}
	if rest, err := asn1.Unmarshal(outer.Bytes.Octets, &basic); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("BasicOCSPResponse: %v", err)
	}
	var data ocspTestData
	if rest, err := asn1.Unmarshal(basic.TBS.FullBytes, &data); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("ResponseData: %v", err)
	}
	r := &ocspTestResp{ProducedAt: data.Produced, tbs: basic.TBS.FullBytes, sig: basic.Sig.RightAlign(), Reason: -1}
	switch {
	case basic.Alg.Algorithm.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}):
		r.SignatureAlgorithm = x509.SHA256WithRSA
	case basic.Alg.Algorithm.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}):
		r.SignatureAlgorithm = x509.SHA1WithRSA
	default:
		return nil, fmt.Errorf("signature algorithm %v", basic.Alg.Algorithm)
	}
	if data.Responder.Class == asn1.ClassContextSpecific && data.Responder.Tag == 1 {
		r.RawResponderName = data.Responder.Bytes
	}
	for _, c := range basic.Certs {
		parsed, err := x509.ParseCertificate(c.FullBytes)
		if err != nil {
			return nil, err
		}
		r.Certs = append(r.Certs, parsed)
	}
	if len(r.Certs) > 0 {
		r.Certificate = r.Certs[0]
	}
	for _, e := range data.Exts {
		if e.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}) {
			r.Nonce, r.HasNonce = e.Value, true
		}
	}
	if len(data.Singles) == 0 {
		return nil, errors.New("no SingleResponse")
	}
	s := data.Singles[0]
	if cert != nil {
		i := slices.IndexFunc(data.Singles, func(s ocspTestSingle) bool { return s.ID.Serial.Cmp(cert.SerialNumber) == 0 })
		if i < 0 {
			return nil, errors.New("no SingleResponse for the certificate")
		}
		s = data.Singles[i]
	}
	r.Serial, r.ThisUpdate, r.NextUpdate = s.ID.Serial, s.This, s.Next
	switch {
	case s.ID.Alg.Algorithm.Equal(asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}):
		r.IssuerHash = crypto.SHA1
	case s.ID.Alg.Algorithm.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}):
		r.IssuerHash = crypto.SHA256
	}
	if s.Status.Class != asn1.ClassContextSpecific || s.Status.Tag > 2 {
		return nil, fmt.Errorf("certStatus class %d tag %d", s.Status.Class, s.Status.Tag)
	}
	r.Status = s.Status.Tag
	if r.Status == ocspTestRevoked {
		var info struct {
			At     time.Time       `asn1:"generalized"`
			Reason asn1.Enumerated `asn1:"explicit,tag:0,optional,default:-1"`
		}
		// [1] IMPLICIT RevokedInfo: put the SEQUENCE tag back to decode it.
		seq := append([]byte{0x30}, s.Status.FullBytes[1:]...)
		if _, err := asn1.Unmarshal(seq, &info); err != nil {
			return nil, fmt.Errorf("RevokedInfo: %v", err)
		}
		r.RevokedAt, r.Reason = info.At, int(info.Reason)
	}

	if len(r.Certs) > 0 {
		if err := r.CheckSignatureFrom(r.Certs[0]); err != nil {
			return nil, fmt.Errorf("signature by the included certificate: %w", err)
		}
		if issuer != nil {
			if err := issuer.CheckSignature(r.Certs[0].SignatureAlgorithm, r.Certs[0].RawTBSCertificate, r.Certs[0].Signature); err != nil {
				return nil, fmt.Errorf("included certificate not issued by the issuer: %w", err)
			}
		}
	} else if issuer != nil {
		if err := r.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("signature by the issuer: %w", err)
		}
	}
	return r, nil
}

// ocspTestRawNonce returns the nonce extnValue of a response, which must parse.
func ocspTestRawNonce(t *testing.T, der []byte) ([]byte, bool) {
	t.Helper()
	r, err := ocspTestParse(der, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.Nonce, r.HasNonce
}

// ocspTestSHA256Request builds a request the way an outside client would: SHA-256 CertID, no
// extensions.
func ocspTestSHA256Request(t *testing.T, cert, issuer *x509.Certificate) []byte {
	var spki struct {
		Alg pkix.AlgorithmIdentifier
		Key asn1.BitString
	}
	if _, err := asn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		t.Fatal(err)
	}
	nameHash := sha256.Sum256(issuer.RawSubject)
	keyHash := sha256.Sum256(spki.Key.RightAlign())
	type single struct{ ID ocspTestCertID }
	var req struct {
		TBS struct{ List []single }
	}
	req.TBS.List = []single{{ocspTestCertID{
		Alg:      pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, Parameters: asn1.NullRawValue},
		NameHash: nameHash[:],
		KeyHash:  keyHash[:],
		Serial:   cert.SerialNumber,
	}}}
	der, err := asn1.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// ocspTestParseRequest reads back the single CertID of a request.
func ocspTestParseRequest(der []byte) (ocspTestCertID, error) {
	var req struct {
		TBS struct {
			Version int `asn1:"explicit,tag:0,optional,default:0"`
			List    []struct{ ID ocspTestCertID }
			Exts    []pkix.Extension `asn1:"explicit,tag:2,optional"`
		}
	}
	if rest, err := asn1.Unmarshal(der, &req); err != nil || len(rest) > 0 {
		return ocspTestCertID{}, fmt.Errorf("OCSPRequest: %v", err)
	}
	if len(req.TBS.List) != 1 {
		return ocspTestCertID{}, fmt.Errorf("%d requests", len(req.TBS.List))
	}
	return req.TBS.List[0].ID, nil
}

func ocspTestOctets(t *testing.T, b []byte) []byte {
	v, err := asn1.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOCSPGoClient(t *testing.T) {
	p := testPKI(t)
	r := NewOCSPResponder(p)
	srv := httptest.NewServer(r)
	defer srv.Close()
	ri := p.RIs[0]

	nonce := ocspTestNonce(t)
	req, err := OCSPRequestWithNonce(ri.Cert, p.CA.Cert, nonce)
	if err != nil {
		t.Fatal(err)
	}
	// The request names the RI by a SHA-1 CertID (RFC 6960 §4.1.1), and carries the nonce.
	parsed, err := ocspTestParseRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	wantName := sha1.Sum(p.CA.Cert.RawSubject)
	if parsed.Serial.Cmp(ri.Cert.SerialNumber) != 0 || !parsed.Alg.Algorithm.Equal(asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}) || !bytes.Equal(parsed.NameHash, wantName[:]) || len(parsed.KeyHash) != 20 {
		t.Fatalf("request CertID %+v", parsed)
	}
	if n, ok, err := OCSPRequestNonce(req); err != nil || !ok || !bytes.Equal(n, nonce) {
		t.Fatalf("request nonce %x %v %v, want %x", n, ok, err, nonce)
	}

	before := time.Now().Truncate(time.Second)
	der := ocspTestPost(t, srv.URL, req)
	resp, err := ocspTestParse(der, ri.Cert, p.CA.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != ocspTestGood || resp.Serial.Cmp(ri.Cert.SerialNumber) != 0 || resp.IssuerHash != crypto.SHA1 {
		t.Errorf("status %d serial %v hash %v", resp.Status, resp.Serial, resp.IssuerHash)
	}
	// The delegated responder, then the CA linking it to the root.
	if len(resp.Certs) != 2 || !resp.Certs[0].Equal(p.OCSP.Cert) || !resp.Certs[1].Equal(p.CA.Cert) || !slices.Contains(resp.Certs[0].ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		t.Errorf("included certificates are not [responder, CA]")
	}
	if !bytes.Equal(resp.RawResponderName, p.OCSP.Cert.RawSubject) {
		t.Errorf("responderID does not name the responder")
	}
	if resp.ProducedAt.Before(before) || resp.ProducedAt.After(time.Now()) || !resp.ThisUpdate.Equal(resp.ProducedAt) || resp.NextUpdate.Sub(resp.ThisUpdate) != time.Hour {
		t.Errorf("times: produced %v this %v next %v", resp.ProducedAt, resp.ThisUpdate, resp.NextUpdate)
	}
	if resp.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Errorf("signature algorithm %v", resp.SignatureAlgorithm)
	}

	// Nonce: echoed in responseExtensions as the OCTET STRING the request carried.
	raw, ok := ocspTestRawNonce(t, der)
	if !ok || !bytes.Equal(raw, ocspTestOctets(t, nonce)) {
		t.Errorf("response nonce extnValue %x, want %x", raw, ocspTestOctets(t, nonce))
	}
	if n, ok, err := OCSPResponseNonce(der); err != nil || !ok || !bytes.Equal(n, nonce) {
		t.Errorf("OCSPResponseNonce = %x %v %v", n, ok, err)
	}

	// A request whose nonce is not wrapped (older clients) is echoed byte for byte.
	rawReq := ocspTestRawNonceRequest(t, ri.Cert, p.CA.Cert, []byte("raw-nonce-value!"))
	der = ocspTestPost(t, srv.URL, rawReq)
	if raw, ok := ocspTestRawNonce(t, der); !ok || string(raw) != "raw-nonce-value!" {
		t.Errorf("raw nonce echoed as %q", raw)
	}

	// No nonce asked, none sent.
	der = ocspTestPost(t, srv.URL, ocspTestSHA256Request(t, ri.Cert, p.CA.Cert))
	if _, ok := ocspTestRawNonce(t, der); ok {
		t.Error("nonce in a response to a request without one")
	}
	resp, err = ocspTestParse(der, ri.Cert, p.CA.Cert)
	if err != nil || resp.Status != ocspTestGood || resp.IssuerHash != crypto.SHA256 {
		t.Errorf("SHA-256 CertID request: %v %+v", err, resp)
	}

	// GET form, mounted under a prefix, base64 escaped into the path.
	mux := http.NewServeMux()
	mux.Handle("/ocsp/", r)
	srv2 := httptest.NewServer(mux)
	defer srv2.Close()
	var found bool
	for range 20 { // want a request whose base64 holds a '/' or '+', the hard case
		req, _ = OCSPRequestWithNonce(ri.Cert, p.CA.Cert, ocspTestNonce(t))
		if strings.ContainsAny(base64.StdEncoding.EncodeToString(req), "/+") {
			found = true
			break
		}
	}
	if !found {
		t.Log("no request with '/' or '+' in its base64 came up; testing a plain one")
	}
	get, err := http.Get(srv2.URL + "/ocsp/" + url.PathEscape(base64.StdEncoding.EncodeToString(req)))
	if err != nil {
		t.Fatal(err)
	}
	der, _ = io.ReadAll(get.Body)
	get.Body.Close()
	if resp, err := ocspTestParse(der, ri.Cert, p.CA.Cert); err != nil || resp.Status != ocspTestGood {
		t.Errorf("GET: %v", err)
	}

	// Garbage gets a malformedRequest OCSPResponse, other methods a 405.
	der = ocspTestPost(t, srv.URL, []byte("not DER"))
	var re ocspTestStatusError
	if _, err := ocspTestParse(der, nil, nil); !errors.As(err, &re) || re != 1 {
		t.Errorf("garbage request: %v", err)
	}
	put, _ := http.NewRequest(http.MethodPut, srv.URL, nil)
	if res, err := http.DefaultClient.Do(put); err != nil || res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %v %v", err, res.StatusCode)
	} else {
		res.Body.Close()
	}
}

// ocspTestRawNonceRequest builds a request whose nonce extension value is the nonce itself, not
// an OCTET STRING around it.
func ocspTestRawNonceRequest(t *testing.T, cert, issuer *x509.Certificate, nonce []byte) []byte {
	req, err := OCSPRequestWithNonce(cert, issuer, []byte{})
	if err != nil {
		t.Fatal(err)
	}
	var r ocspRequestASN1
	if _, err := asn1.Unmarshal(req, &r); err != nil {
		t.Fatal(err)
	}
	r.TBSRequest.RequestExtensions[0].Value = nonce
	der, err := asn1.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestOCSPStatuses(t *testing.T) {
	p := testPKI(t)
	r := NewOCSPResponder(p)
	ri, other := p.RIs[0], p.RIs[1]

	at := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	r.RevokeWithReason(ri.Cert.SerialNumber, at, ReasonKeyCompromise)
	der, err := r.Respond(ri.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ocspTestParse(der, ri.Cert, p.CA.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != ocspTestRevoked || !resp.RevokedAt.Equal(at) || resp.Reason != ReasonKeyCompromise {
		t.Errorf("revoked: status %d at %v reason %d", resp.Status, resp.RevokedAt, resp.Reason)
	}
	if _, ok := ocspTestRawNonce(t, der); ok {
		t.Error("nonce sent although none was asked for")
	}
	der, _ = r.Respond(other.Cert, nil)
	if resp, err := ocspTestParse(der, other.Cert, p.CA.Cert); err != nil || resp.Status != ocspTestGood {
		t.Errorf("revoking one RI changed the other: %v", err)
	}
	r.Unrevoke(ri.Cert.SerialNumber)
	der, _ = r.Respond(ri.Cert, nil)
	if resp, err := ocspTestParse(der, ri.Cert, p.CA.Cert); err != nil || resp.Status != ocspTestGood {
		t.Errorf("after Unrevoke: %v", err)
	}

	// The CA certificate is answered by the root itself.
	der, err = r.Respond(p.CA.Cert, []byte("n"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = ocspTestParse(der, p.CA.Cert, p.Root.Cert)
	if err != nil || resp.Status != ocspTestGood || len(resp.Certs) == 0 || !resp.Certs[0].Equal(p.Root.Cert) {
		t.Errorf("CA status: %v", err)
	}

	// Certificates from elsewhere are unknown.
	foreign := testSHA1PKI(t).RIs[0]
	der, err = r.Respond(foreign.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = ocspTestParse(der, foreign.Cert, nil)
	if err != nil || resp.Status != ocspTestUnknown {
		t.Errorf("foreign certificate: %v status %v", err, resp)
	}

	// A fielded PKI gets SHA-1 signed responses, which x/crypto still verifies.
	q := testSHA1PKI(t)
	rq := NewOCSPResponder(q)
	der, err = rq.Respond(q.Devices[0].Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = ocspTestParse(der, q.Devices[0].Cert, q.CA.Cert)
	if err != nil || resp.Status != ocspTestGood || resp.SignatureAlgorithm != x509.SHA1WithRSA {
		t.Errorf("SHA-1 PKI: %v %v", err, resp)
	}
}

func TestOCSPFaults(t *testing.T) {
	p := testPKI(t)
	r := NewOCSPResponder(p)
	ri := p.RIs[0]
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	r.SetClock(func() time.Time { return now })
	nonce := ocspTestNonce(t)

	get := func() (*ocspTestResp, []byte) {
		t.Helper()
		der, err := r.Respond(ri.Cert, nonce)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ocspTestParse(der, ri.Cert, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp, der
	}

	resp, der := get()
	if !resp.ProducedAt.Equal(now) || !resp.ThisUpdate.Equal(now) || !resp.NextUpdate.Equal(now.Add(time.Hour)) {
		t.Errorf("clock not used: produced %v this %v next %v", resp.ProducedAt, resp.ThisUpdate, resp.NextUpdate)
	}
	if raw, _ := ocspTestRawNonce(t, der); !bytes.Equal(raw, ocspTestOctets(t, nonce)) {
		t.Error("nonce not echoed")
	}

	r.SetFaults(OCSPFaults{Stale: true})
	resp, _ = get()
	if !resp.NextUpdate.Before(now) || !resp.ThisUpdate.Before(resp.NextUpdate) || resp.ProducedAt.After(resp.ThisUpdate) {
		t.Errorf("stale: produced %v this %v next %v, now %v", resp.ProducedAt, resp.ThisUpdate, resp.NextUpdate, now)
	}

	r.SetFaults(OCSPFaults{WrongNonce: true})
	_, der = get()
	raw, ok := ocspTestRawNonce(t, der)
	if !ok || bytes.Equal(raw, ocspTestOctets(t, nonce)) {
		t.Errorf("WrongNonce echoed the right nonce (%v)", ok)
	}
	noNonce, _ := r.Respond(ri.Cert, nil)
	if _, ok := ocspTestRawNonce(t, noNonce); !ok {
		t.Error("WrongNonce without a request nonce sent none")
	}

	r.SetFaults(OCSPFaults{SignWithCA: true})
	resp, _ = get()
	if resp.Certificate == nil || !resp.Certificate.Equal(p.CA.Cert) || resp.CheckSignatureFrom(p.CA.Cert) != nil {
		t.Error("SignWithCA: not signed by the CA")
	}
	if slices.Contains(resp.Certificate.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) || !bytes.Equal(resp.RawResponderName, p.CA.Cert.RawSubject) {
		t.Error("SignWithCA: signer looks like a delegated responder")
	}

	rogue := p.Devices[1].Key
	r.SetFaults(OCSPFaults{SignWithKey: rogue})
	resp, der = get()
	if resp.Certificate == nil || !rogue.PublicKey.Equal(resp.Certificate.PublicKey) {
		t.Fatal("SignWithKey: response not signed with that key")
	}
	if _, err := ocspTestParse(der, ri.Cert, p.CA.Cert); err == nil {
		t.Error("SignWithKey: the response verifies under the CA")
	}
	if CheckIssuedBy(resp.Certificate, p.CA.Cert) == nil || CheckIssuedBy(resp.Certificate, p.Root.Cert) == nil {
		t.Error("SignWithKey: signer certificate chains to the PKI")
	}

	r.SetFaults(OCSPFaults{OmitResponderCert: true})
	resp, der = get()
	if resp.Certificate != nil {
		t.Error("OmitResponderCert: certificate included")
	}
	if _, err := ocspTestParse(der, ri.Cert, p.OCSP.Cert); err != nil {
		t.Errorf("OmitResponderCert: does not verify with the known responder key: %v", err)
	}

	r.SetFaults(OCSPFaults{})
	resp, der = get()
	if !resp.Certificate.Equal(p.OCSP.Cert) || !resp.NextUpdate.After(now) {
		t.Error("clearing faults did not restore the delegated responder")
	}
	if raw, _ := ocspTestRawNonce(t, der); !bytes.Equal(raw, ocspTestOctets(t, nonce)) {
		t.Error("clearing faults did not restore the nonce")
	}
}

// TestOCSPOpenSSL queries the responder over real HTTP with OpenSSL's client, which checks the
// signature, the responder's authorization, the nonce and the times on its own.
func TestOCSPOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	p := testPKI(t)
	dir := t.TempDir()
	if err := p.Write(dir); err != nil {
		t.Fatal(err)
	}
	r := NewOCSPResponder(p)
	srv := httptest.NewServer(r)
	defer srv.Close()

	query := func(issuer, cert string) string {
		t.Helper()
		cmd := exec.Command("openssl", "ocsp", "-issuer", issuer, "-cert", cert, "-url", srv.URL, "-CAfile", "root.pem", "-resp_text")
		cmd.Dir = dir
		out, _ := cmd.CombinedOutput() // the exit status says little; the text says what failed
		return string(out)
	}
	expect := func(out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("openssl output lacks %q:\n%s", w, out)
			}
		}
	}

	out := query("ca.pem", "ri-1.pem")
	expect(out, "Response verify OK", "ri-1.pem: good", "OCSP Nonce")
	if strings.Contains(out, "WARNING") {
		t.Errorf("openssl warns:\n%s", out)
	}
	expect(query("root.pem", "ca.pem"), "Response verify OK", "ca.pem: good")

	r.Revoke(p.RIs[0].Cert.SerialNumber, time.Now().Add(-time.Minute))
	expect(query("ca.pem", "ri-1.pem"), "Response verify OK", "ri-1.pem: revoked")
	expect(query("ca.pem", "ri-2.pem"), "ri-2.pem: good")

	r.SetFaults(OCSPFaults{WrongNonce: true})
	if out := query("ca.pem", "ri-2.pem"); !strings.Contains(strings.ToLower(out), "nonce verify error") {
		t.Errorf("openssl accepted a wrong nonce:\n%s", out)
	}
	r.SetFaults(OCSPFaults{Stale: true})
	expect(query("ca.pem", "ri-2.pem"), "Status times invalid")
	r.SetFaults(OCSPFaults{SignWithKey: p.DEA.Key})
	if out := query("ca.pem", "ri-2.pem"); strings.Contains(out, "Response verify OK") || !strings.Contains(out, "Response Verify Failure") {
		t.Errorf("openssl accepted an unauthorized signer:\n%s", out)
	}
	r.SetFaults(OCSPFaults{})
	expect(query("ca.pem", "ri-2.pem"), "Response verify OK", "ri-2.pem: good")
}
