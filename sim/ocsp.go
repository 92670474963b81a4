package sim

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// The responder encodes OCSP itself instead of using golang.org/x/crypto/ocsp.CreateResponse:
// that function puts extensions into singleExtensions, where RFC 6960 §4.4.1 clients (OpenSSL,
// Symbian) do not look for the nonce, and stamps producedAt from the wall clock, which would make
// the injected clock and the Stale fault meaningless.

var (
	oidOCSPBasic     = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidOCSPNonce     = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidSHA1          = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA1WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
)

// OCSP responseStatus values (RFC 6960 §4.2.1) used here.
const (
	ocspSuccessful       = 0
	ocspMalformedRequest = 1
	ocspInternalError    = 2
)

// CRL reason codes (RFC 5280 §5.3.1) most useful for revocations.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonCACompromise         = 2
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
)

type ocspCertID struct {
	HashAlgorithm  pkix.AlgorithmIdentifier
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	SerialNumber   *big.Int
}

type ocspRequestASN1 struct {
	TBSRequest        ocspTBSRequest
	OptionalSignature asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

type ocspTBSRequest struct {
	Version           int           `asn1:"explicit,tag:0,default:0,optional"`
	RequestorName     asn1.RawValue `asn1:"explicit,tag:1,optional"`
	RequestList       []ocspSingleRequest
	RequestExtensions []pkix.Extension `asn1:"explicit,tag:2,optional"`
}

type ocspSingleRequest struct {
	ReqCert                 ocspCertID
	SingleRequestExtensions []pkix.Extension `asn1:"explicit,tag:0,optional"`
}

type ocspResponseASN1 struct {
	Status        asn1.Enumerated
	ResponseBytes ocspResponseBytes `asn1:"explicit,tag:0,optional"`
}

type ocspResponseBytes struct {
	ResponseType asn1.ObjectIdentifier
	Response     []byte
}

type ocspBasicResponse struct {
	TBSResponseData    asn1.RawValue
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          asn1.BitString
	Certs              []asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

type ocspResponseData struct {
	Version            int `asn1:"explicit,tag:0,default:0,optional"`
	ResponderID        asn1.RawValue
	ProducedAt         time.Time `asn1:"generalized"`
	Responses          []ocspSingleResponse
	ResponseExtensions []pkix.Extension `asn1:"explicit,tag:1,optional"`
}

type ocspSingleResponse struct {
	CertID           ocspCertID
	CertStatus       asn1.RawValue
	ThisUpdate       time.Time        `asn1:"generalized"`
	NextUpdate       time.Time        `asn1:"generalized,explicit,tag:0,optional"`
	SingleExtensions []pkix.Extension `asn1:"explicit,tag:1,optional"`
}

type ocspRevokedInfo struct {
	RevocationTime time.Time       `asn1:"generalized"`
	Reason         asn1.Enumerated `asn1:"explicit,tag:0,optional"`
}

// OCSPFaults makes the responder misbehave in the ways a verifier must notice.
type OCSPFaults struct {
	Stale             bool            // thisUpdate/nextUpdate (and producedAt) in the past: an old cached response
	WrongNonce        bool            // answer with a nonce other than the request's (one is added when the request had none)
	SignWithCA        bool            // sign with the issuing CA's own key instead of the delegated responder
	SignWithKey       *rsa.PrivateKey // sign with this unauthorized key, shipping a self-signed certificate for it
	OmitResponderCert bool            // send no certificates (what OCSPResponderKeyIdentifier lets an RI rely on)
}

type revocation struct {
	at     time.Time
	reason int
}

// ocspIssuer is a CA the responder answers for and who signs those answers.
type ocspIssuer struct {
	ca     *Identity
	signer *Identity
}

// OCSPResponder is an RFC 6960 responder for the certificates of a PKI. It answers for
// certificates issued by the CA (signed by the delegated responder p.OCSP) and for those issued
// by the root, such as the CA certificate itself (signed by the root, which RFC 6960 §4.2.2.2
// allows); anything else is "unknown". Every serial under a known issuer is "good" unless revoked:
// the responder keeps no list of issued certificates. Safe for concurrent use.
type OCSPResponder struct {
	mu       sync.Mutex
	issuers  []ocspIssuer // the CA first: it is the default for requests naming no known issuer
	sha1     bool         // sign responses with SHA1WithRSA, as the PKI signs certificates
	revoked  map[string]revocation
	clock    func() time.Time
	validity time.Duration
	faults   OCSPFaults
	rogue    *Identity // certificate for faults.SignWithKey
	rogueErr error
}

// NewOCSPResponder makes a responder for p with a one-hour validity window and the wall clock.
func NewOCSPResponder(p *PKI) *OCSPResponder {
	r := &OCSPResponder{
		sha1:     p.Opts.SHA1,
		revoked:  map[string]revocation{},
		clock:    time.Now,
		validity: time.Hour,
	}
	signer := p.OCSP
	if signer == nil {
		signer = p.CA
	}
	r.issuers = []ocspIssuer{{ca: p.CA, signer: signer}, {ca: p.Root, signer: p.Root}}
	return r
}

// Revoke marks the certificate with this serial revoked since at (reason unspecified, which RFC
// 5280 says to leave out of the encoding).
func (r *OCSPResponder) Revoke(serial *big.Int, at time.Time) {
	r.RevokeWithReason(serial, at, ReasonUnspecified)
}

// RevokeWithReason marks the certificate with this serial revoked since at with a CRL reason code.
func (r *OCSPResponder) RevokeWithReason(serial *big.Int, at time.Time, reason int) {
	if serial == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revoked[serial.String()] = revocation{at: at, reason: reason}
}

// Unrevoke forgets a revocation.
func (r *OCSPResponder) Unrevoke(serial *big.Int) {
	if serial == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.revoked, serial.String())
}

// SetClock replaces the clock that stamps producedAt and thisUpdate (nil: the wall clock).
func (r *OCSPResponder) SetClock(clock func() time.Time) {
	if clock == nil {
		clock = time.Now
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock = clock
}

// SetValidity sets nextUpdate - thisUpdate (default one hour; zero or less: no nextUpdate).
func (r *OCSPResponder) SetValidity(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.validity = d
}

// SetFaults replaces the active faults; the zero value restores correct behaviour.
func (r *OCSPResponder) SetFaults(f OCSPFaults) {
	var rogue *Identity
	var rogueErr error
	if f.SignWithKey != nil {
		rogue, rogueErr = selfSignedResponder(f.SignWithKey)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults, r.rogue, r.rogueErr = f, rogue, rogueErr
}

// selfSignedResponder certifies key as an OCSP signer nobody trusts: signature and key purpose
// are fine, only the authorization is missing.
func selfSignedResponder(key *rsa.PrivateKey) (*Identity, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	v, err := asn1.Marshal([]asn1.ObjectIdentifier{OIDKPOCSPSigning})
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "roapproxy unauthorized OCSP signer", Organization: []string{"roapproxy test PKI"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(2, 0, 0),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtraExtensions:       []pkix.Extension{{Id: oidExtExtKeyUsage, Value: v}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("sim: certificate for the unauthorized OCSP signer: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Identity{Name: "ocsp-unauthorized", Key: key, Cert: cert, Chain: []*x509.Certificate{cert}}, nil
}

// Respond returns a DER OCSPResponse about cert: good or revoked when a known issuer issued it,
// unknown otherwise. A non-nil nonce is sent in the id-pkix-ocsp-nonce response extension, its
// value the DER OCTET STRING of nonce (RFC 8954 form). The signer's certificates are included.
func (r *OCSPResponder) Respond(cert *x509.Certificate, nonce []byte) ([]byte, error) {
	if cert == nil || cert.SerialNumber == nil {
		return nil, errors.New("sim: OCSP Respond needs a certificate")
	}
	var ext []byte
	if nonce != nil {
		var err error
		if ext, err = asn1.Marshal(nonce); err != nil {
			return nil, fmt.Errorf("sim: encoding OCSP nonce: %w", err)
		}
	}
	return r.respond([]ocspCertID{r.certIDFor(cert)}, ext)
}

// certIDFor names cert the way a client would: with SHA-1 hashes of its issuer's name and key.
func (r *OCSPResponder) certIDFor(cert *x509.Certificate) ocspCertID {
	for _, is := range r.issuers {
		if CheckIssuedBy(cert, is.ca.Cert) == nil {
			id, err := certIDWith(crypto.SHA1, cert.SerialNumber, is.ca.Cert)
			if err == nil {
				return id
			}
		}
	}
	// The issuer's key is not at hand. The authority key identifier is the closest thing to a key
	// hash a certificate carries; the status is unknown whatever goes here.
	keyHash := cert.AuthorityKeyId
	if len(keyHash) != sha1.Size {
		keyHash = make([]byte, sha1.Size)
	}
	nameHash := sha1.Sum(cert.RawIssuer)
	return ocspCertID{
		HashAlgorithm:  pkix.AlgorithmIdentifier{Algorithm: oidSHA1, Parameters: asn1.NullRawValue},
		IssuerNameHash: nameHash[:],
		IssuerKeyHash:  keyHash,
		SerialNumber:   cert.SerialNumber,
	}
}

func certIDWith(h crypto.Hash, serial *big.Int, issuer *x509.Certificate) (ocspCertID, error) {
	var oid asn1.ObjectIdentifier
	switch h {
	case crypto.SHA1:
		oid = oidSHA1
	case crypto.SHA256:
		oid = oidSHA256
	default:
		return ocspCertID{}, fmt.Errorf("sim: unsupported OCSP CertID hash %v", h)
	}
	nameHash, keyHash, err := issuerHashes(h, issuer)
	if err != nil {
		return ocspCertID{}, err
	}
	return ocspCertID{
		HashAlgorithm:  pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.NullRawValue},
		IssuerNameHash: nameHash,
		IssuerKeyHash:  keyHash,
		SerialNumber:   serial,
	}, nil
}

// issuerHashes returns the CertID hashes of RFC 6960 §4.1.1: over the DER issuer name and over
// the subjectPublicKey BIT STRING value (not the whole SubjectPublicKeyInfo).
func issuerHashes(h crypto.Hash, issuer *x509.Certificate) (nameHash, keyHash []byte, err error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, nil, fmt.Errorf("sim: issuer public key: %w", err)
	}
	var hf func() hash.Hash
	switch h {
	case crypto.SHA1:
		hf = sha1.New
	case crypto.SHA256:
		hf = sha256.New
	default:
		return nil, nil, fmt.Errorf("sim: unsupported OCSP CertID hash %v", h)
	}
	nh := hf()
	nh.Write(issuer.RawSubject)
	kh := hf()
	kh.Write(spki.PublicKey.RightAlign())
	return nh.Sum(nil), kh.Sum(nil), nil
}

// lookup finds the issuer a CertID names, or returns -1.
func (r *OCSPResponder) lookup(id ocspCertID) int {
	var h crypto.Hash
	switch {
	case id.HashAlgorithm.Algorithm.Equal(oidSHA1):
		h = crypto.SHA1
	case id.HashAlgorithm.Algorithm.Equal(oidSHA256):
		h = crypto.SHA256
	default:
		return -1
	}
	for i, is := range r.issuers {
		nh, kh, err := issuerHashes(h, is.ca.Cert)
		if err == nil && bytes.Equal(nh, id.IssuerNameHash) && bytes.Equal(kh, id.IssuerKeyHash) {
			return i
		}
	}
	return -1
}

// RespondRequest answers a DER OCSPRequest, echoing its nonce extension value byte for byte.
// The returned bytes are always an OCSPResponse fit to send: when err is non-nil they carry the
// malformedRequest or internalError status and err says why.
func (r *OCSPResponder) RespondRequest(der []byte) ([]byte, error) {
	req, err := parseOCSPRequest(der)
	if err != nil {
		return errorResponse(ocspMalformedRequest), err
	}
	var nonce []byte
	for _, e := range req.TBSRequest.RequestExtensions {
		if e.Id.Equal(oidOCSPNonce) {
			nonce = e.Value
			if nonce == nil {
				nonce = []byte{}
			}
		}
	}
	ids := make([]ocspCertID, len(req.TBSRequest.RequestList))
	for i, s := range req.TBSRequest.RequestList {
		ids[i] = s.ReqCert
	}
	resp, err := r.respond(ids, nonce)
	if err != nil {
		return errorResponse(ocspInternalError), err
	}
	return resp, nil
}

func parseOCSPRequest(der []byte) (*ocspRequestASN1, error) {
	var req ocspRequestASN1
	rest, err := asn1.Unmarshal(der, &req)
	if err != nil {
		return nil, fmt.Errorf("sim: malformed OCSP request: %w", err)
	}
	if len(rest) > 0 {
		return nil, errors.New("sim: malformed OCSP request: trailing data")
	}
	if len(req.TBSRequest.RequestList) == 0 {
		return nil, errors.New("sim: malformed OCSP request: empty requestList")
	}
	return &req, nil
}

func errorResponse(status int) []byte {
	b, _ := asn1.Marshal(ocspResponseASN1{Status: asn1.Enumerated(status)})
	return b
}

// respond builds and signs a BasicOCSPResponse. nonceValue is the extnValue content of the nonce
// extension to send, nil for none.
func (r *OCSPResponder) respond(ids []ocspCertID, nonceValue []byte) ([]byte, error) {
	r.mu.Lock()
	faults, rogue, rogueErr := r.faults, r.rogue, r.rogueErr
	now, validity, useSHA1 := r.clock(), r.validity, r.sha1
	revoked := make(map[string]revocation, len(r.revoked))
	for k, v := range r.revoked {
		revoked[k] = v
	}
	r.mu.Unlock()

	// One signer per response: the one for the first known issuer named, else the CA's responder.
	signer := r.issuers[0].signer
	for _, id := range ids {
		if i := r.lookup(id); i >= 0 {
			signer = r.issuers[i].signer
			if faults.SignWithCA {
				signer = r.issuers[i].ca
			}
			break
		}
	}
	if faults.SignWithKey != nil {
		if rogueErr != nil {
			return nil, rogueErr
		}
		signer = rogue
	}

	now = now.UTC().Truncate(time.Second)
	produced, thisUpdate := now, now
	if faults.Stale {
		// An answer cached two windows ago: expired an entire window before now.
		stale := 2 * validity
		if stale <= 0 {
			stale = 2 * time.Hour
		}
		produced, thisUpdate = now.Add(-stale), now.Add(-stale)
	}
	var nextUpdate time.Time
	if validity > 0 {
		nextUpdate = thisUpdate.Add(validity)
	} else if faults.Stale {
		nextUpdate = now.Add(-time.Hour)
	}

	singles := make([]ocspSingleResponse, len(ids))
	for i, id := range ids {
		status := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2} // unknown
		if r.lookup(id) >= 0 {
			status = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0} // good
			if rv, ok := revoked[id.SerialNumber.String()]; ok {
				info, err := asn1.Marshal(ocspRevokedInfo{RevocationTime: rv.at.UTC().Truncate(time.Second), Reason: asn1.Enumerated(rv.reason)})
				if err != nil {
					return nil, fmt.Errorf("sim: encoding revokedInfo: %w", err)
				}
				var seq asn1.RawValue
				if _, err := asn1.Unmarshal(info, &seq); err != nil {
					return nil, err
				}
				// [1] IMPLICIT RevokedInfo: the SEQUENCE contents under a context tag.
				status = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: seq.Bytes}
			}
		}
		singles[i] = ocspSingleResponse{CertID: id, CertStatus: status, ThisUpdate: thisUpdate, NextUpdate: nextUpdate}
	}

	if faults.WrongNonce {
		nonceValue = wrongNonce(nonceValue)
	}
	tbs := ocspResponseData{
		ResponderID: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: signer.Cert.RawSubject},
		ProducedAt:  produced,
		Responses:   singles,
	}
	if nonceValue != nil {
		tbs.ResponseExtensions = []pkix.Extension{{Id: oidOCSPNonce, Value: nonceValue}}
	}
	tbsDER, err := asn1.Marshal(tbs)
	if err != nil {
		return nil, fmt.Errorf("sim: encoding OCSP ResponseData: %w", err)
	}

	h, sigAlg := crypto.SHA256, oidSHA256WithRSA
	if useSHA1 {
		h, sigAlg = crypto.SHA1, oidSHA1WithRSA
	}
	hh := h.New()
	hh.Write(tbsDER)
	sig, err := rsa.SignPKCS1v15(rand.Reader, signer.Key, h, hh.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("sim: signing OCSP response: %w", err)
	}
	basic := ocspBasicResponse{
		TBSResponseData:    asn1.RawValue{FullBytes: tbsDER},
		SignatureAlgorithm: pkix.AlgorithmIdentifier{Algorithm: sigAlg, Parameters: asn1.NullRawValue},
		Signature:          asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	}
	if !faults.OmitResponderCert {
		// The signer first (x/crypto/ocsp reads only the first), then the CA that links it to
		// the root, for clients that hold nothing but the trust anchor.
		for _, c := range signer.Chain {
			basic.Certs = append(basic.Certs, asn1.RawValue{FullBytes: c.Raw})
		}
	}
	basicDER, err := asn1.Marshal(basic)
	if err != nil {
		return nil, fmt.Errorf("sim: encoding BasicOCSPResponse: %w", err)
	}
	out, err := asn1.Marshal(ocspResponseASN1{
		Status:        ocspSuccessful,
		ResponseBytes: ocspResponseBytes{ResponseType: oidOCSPBasic, Response: basicDER},
	})
	if err != nil {
		return nil, fmt.Errorf("sim: encoding OCSPResponse: %w", err)
	}
	return out, nil
}

// wrongNonce returns a nonce extension value that differs from v but has the same form.
func wrongNonce(v []byte) []byte {
	if v == nil {
		n := make([]byte, 16)
		_, _ = rand.Read(n)
		b, _ := asn1.Marshal(n)
		return b
	}
	inner, wrapped := unwrapNonce(v)
	flipped := make([]byte, len(inner))
	for i, c := range inner {
		flipped[i] = ^c
	}
	if len(flipped) == 0 {
		flipped = []byte{0}
	}
	if !wrapped {
		return flipped
	}
	b, _ := asn1.Marshal(flipped)
	return b
}

// unwrapNonce returns the nonce inside an extension value: RFC 8954 wraps it in an OCTET STRING,
// older clients sent it raw (Symbian accepts both). A raw nonce that happens to be a complete DER
// OCTET STRING is indistinguishable and gets unwrapped.
func unwrapNonce(v []byte) (nonce []byte, wrapped bool) {
	var inner []byte
	if rest, err := asn1.Unmarshal(v, &inner); err == nil && len(rest) == 0 {
		return inner, true
	}
	return v, false
}

// ServeHTTP answers RFC 6960 Appendix A requests: POST with an application/ocsp-request body, or
// GET with the base64 (then URL-escaped) request as the last path segment(s). Errors in the
// request are answered with a malformedRequest OCSPResponse, as the RFC wants.
func (r *OCSPResponder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var der []byte
	switch req.Method {
	case http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 64<<10))
		if err != nil {
			http.Error(w, "reading OCSP request: "+err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		der = body
	case http.MethodGet:
		der = requestFromPath(req.URL)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "OCSP wants GET or POST", http.StatusMethodNotAllowed)
		return
	}
	resp, _ := r.RespondRequest(der)
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(resp)
}

// requestFromPath finds the base64 request in a GET path. The responder may be mounted under any
// prefix and base64 contains '/', so every suffix starting after a '/' is tried, longest first.
func requestFromPath(u *url.URL) []byte {
	p := u.EscapedPath()
	for i := 0; i < len(p); i++ {
		if p[i] != '/' || i+1 == len(p) {
			continue
		}
		s, err := url.PathUnescape(p[i+1:])
		if err != nil {
			continue
		}
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			continue
		}
		if _, err := parseOCSPRequest(der); err == nil {
			return der
		}
	}
	return nil
}

// OCSPRequestWithNonce builds a DER OCSPRequest for cert (SHA-1 CertID, as fielded clients use),
// with an id-pkix-ocsp-nonce request extension holding the DER OCTET STRING of nonce when nonce is
// not nil. The simulated RI sends the Device Nonce of a registrationRequest this way.
func OCSPRequestWithNonce(cert, issuer *x509.Certificate, nonce []byte) ([]byte, error) {
	if cert == nil || cert.SerialNumber == nil || issuer == nil {
		return nil, errors.New("sim: OCSPRequestWithNonce needs a certificate and its issuer")
	}
	id, err := certIDWith(crypto.SHA1, cert.SerialNumber, issuer)
	if err != nil {
		return nil, err
	}
	req := ocspRequestASN1{TBSRequest: ocspTBSRequest{RequestList: []ocspSingleRequest{{ReqCert: id}}}}
	if nonce != nil {
		v, err := asn1.Marshal(nonce)
		if err != nil {
			return nil, fmt.Errorf("sim: encoding OCSP nonce: %w", err)
		}
		req.TBSRequest.RequestExtensions = []pkix.Extension{{Id: oidOCSPNonce, Value: v}}
	}
	der, err := asn1.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("sim: encoding OCSP request: %w", err)
	}
	return der, nil
}

// OCSPRequestNonce returns the nonce of a DER OCSPRequest (unwrapped from its OCTET STRING when
// wrapped) and whether there is one.
func OCSPRequestNonce(der []byte) ([]byte, bool, error) {
	req, err := parseOCSPRequest(der)
	if err != nil {
		return nil, false, err
	}
	return findNonce(req.TBSRequest.RequestExtensions)
}

// OCSPResponseNonce returns the nonce in the responseExtensions of a DER OCSPResponse (unwrapped
// from its OCTET STRING when wrapped) and whether there is one. golang.org/x/crypto/ocsp does not
// expose responseExtensions, hence this. It does not verify anything.
func OCSPResponseNonce(der []byte) ([]byte, bool, error) {
	var resp ocspResponseASN1
	if rest, err := asn1.Unmarshal(der, &resp); err != nil || len(rest) > 0 {
		return nil, false, fmt.Errorf("sim: malformed OCSP response: %v", errOr(err, "trailing data"))
	}
	if resp.Status != ocspSuccessful {
		return nil, false, fmt.Errorf("sim: OCSP response status %d", resp.Status)
	}
	if !resp.ResponseBytes.ResponseType.Equal(oidOCSPBasic) {
		return nil, false, fmt.Errorf("sim: OCSP response type %v is not id-pkix-ocsp-basic", resp.ResponseBytes.ResponseType)
	}
	var basic ocspBasicResponse
	if rest, err := asn1.Unmarshal(resp.ResponseBytes.Response, &basic); err != nil || len(rest) > 0 {
		return nil, false, fmt.Errorf("sim: malformed BasicOCSPResponse: %v", errOr(err, "trailing data"))
	}
	var tbs ocspResponseData
	if rest, err := asn1.Unmarshal(basic.TBSResponseData.FullBytes, &tbs); err != nil || len(rest) > 0 {
		return nil, false, fmt.Errorf("sim: malformed ResponseData: %v", errOr(err, "trailing data"))
	}
	return findNonce(tbs.ResponseExtensions)
}

func findNonce(exts []pkix.Extension) ([]byte, bool, error) {
	for _, e := range exts {
		if e.Id.Equal(oidOCSPNonce) {
			n, _ := unwrapNonce(e.Value)
			return n, true, nil
		}
	}
	return nil, false, nil
}

func errOr(err error, s string) any {
	if err != nil {
		return err
	}
	return s
}
