package verify

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"math/big"
	"slices"
	"time"

	"github.com/roapproxy/roapproxy/decode"
)

// OCSP responses are parsed here with encoding/asn1 rather than golang.org/x/crypto/ocsp: its
// ParseResponseForCert accepts responses a verifier must reject (DESIGN pitfalls), it refuses
// SHA-1-signed responder certificates, and every judgement below (responder authority,
// freshness, nonce) needs the raw fields anyway.

// RFC 6960 §4.2.1 structures.
type asn1OCSPResponse struct {
	Status   asn1.Enumerated
	Response asn1ResponseBytes `asn1:"explicit,tag:0,optional"`
}

type asn1ResponseBytes struct {
	ResponseType asn1.ObjectIdentifier
	Response     []byte
}

type asn1BasicResponse struct {
	TBSResponseData    asn1.RawValue
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          asn1.BitString
	Certificates       []asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

type asn1ResponseData struct {
	Raw            asn1.RawContent
	Version        int `asn1:"optional,default:0,explicit,tag:0"`
	RawResponderID asn1.RawValue
	ProducedAt     time.Time `asn1:"generalized"`
	Responses      []asn1SingleResponse
	Extensions     []pkix.Extension `asn1:"explicit,tag:1,optional"`
}

type asn1CertID struct {
	HashAlgorithm pkix.AlgorithmIdentifier
	NameHash      []byte
	IssuerKeyHash []byte
	SerialNumber  *big.Int
}

type asn1SingleResponse struct {
	CertID           asn1CertID
	Good             asn1.Flag        `asn1:"tag:0,optional"`
	Revoked          asn1RevokedInfo  `asn1:"tag:1,optional"`
	Unknown          asn1.Flag        `asn1:"tag:2,optional"`
	ThisUpdate       time.Time        `asn1:"generalized"`
	NextUpdate       time.Time        `asn1:"generalized,explicit,tag:0,optional"`
	SingleExtensions []pkix.Extension `asn1:"explicit,tag:1,optional"`
}

type asn1RevokedInfo struct {
	RevocationTime time.Time       `asn1:"generalized"`
	Reason         asn1.Enumerated `asn1:"explicit,tag:0,optional,default:-1"`
}

var (
	oidOCSPBasic = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidOCSPNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
)

// Certificate status values.
const (
	ocspGood = iota
	ocspRevoked
	ocspUnknown
)

var ocspStatusNames = map[asn1.Enumerated]string{1: "malformedRequest", 2: "internalError", 3: "tryLater", 5: "sigRequired", 6: "unauthorized"}

type ocspSingle struct {
	hash       crypto.Hash
	nameHash   []byte
	keyHash    []byte
	serial     *big.Int
	status     int
	revokedAt  time.Time
	reason     int
	thisUpdate time.Time
	nextUpdate time.Time
}

// ocspParsed is one decoded OCSP response.
type ocspParsed struct {
	tbs           []byte
	sigAlg        x509.SignatureAlgorithm
	sigAlgOID     asn1.ObjectIdentifier
	signature     []byte
	certs         []*x509.Certificate
	responderName []byte // DER Name (byName), or nil
	responderKey  []byte // SHA-1 of the responder key (byKey), or nil
	producedAt    time.Time
	single        []ocspSingle
	nonce         []byte
	hasNonce      bool
}

var hashByOID = map[string]crypto.Hash{
	"1.3.14.3.2.26":          crypto.SHA1,
	"2.16.840.1.101.3.4.2.1": crypto.SHA256,
	"2.16.840.1.101.3.4.2.2": crypto.SHA384,
	"2.16.840.1.101.3.4.2.3": crypto.SHA512,
}

var sigAlgByOID = map[string]x509.SignatureAlgorithm{
	"1.2.840.113549.1.1.5":  x509.SHA1WithRSA,
	"1.2.840.113549.1.1.11": x509.SHA256WithRSA,
	"1.2.840.113549.1.1.12": x509.SHA384WithRSA,
	"1.2.840.113549.1.1.13": x509.SHA512WithRSA,
	"1.2.840.10045.4.1":     x509.ECDSAWithSHA1,
	"1.2.840.10045.4.3.2":   x509.ECDSAWithSHA256,
	"1.2.840.10045.4.3.3":   x509.ECDSAWithSHA384,
	"1.2.840.10045.4.3.4":   x509.ECDSAWithSHA512,
	"1.3.101.112":           x509.PureEd25519,
}

var oidRSAPSS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}

type asn1PSSParams struct {
	Hash pkix.AlgorithmIdentifier `asn1:"explicit,tag:0,optional"`
}

func signatureAlgorithm(ai pkix.AlgorithmIdentifier) x509.SignatureAlgorithm {
	if a, ok := sigAlgByOID[ai.Algorithm.String()]; ok {
		return a
	}
	if ai.Algorithm.Equal(oidRSAPSS) {
		var p asn1PSSParams
		if _, err := asn1.Unmarshal(ai.Parameters.FullBytes, &p); err == nil {
			switch hashByOID[p.Hash.Algorithm.String()] {
			case crypto.SHA256:
				return x509.SHA256WithRSAPSS
			case crypto.SHA384:
				return x509.SHA384WithRSAPSS
			case crypto.SHA512:
				return x509.SHA512WithRSAPSS
			}
		}
	}
	return x509.UnknownSignatureAlgorithm
}

// parseOCSP decodes a DER OCSPResponse holding a BasicOCSPResponse.
func parseOCSP(der []byte) (*ocspParsed, error) {
	var resp asn1OCSPResponse
	rest, err := asn1.Unmarshal(der, &resp)
	if err != nil {
		return nil, fmt.Errorf("not a DER OCSPResponse: %v", err)
	}
	if len(rest) > 0 {
		return nil, errors.New("trailing bytes after the OCSPResponse")
	}
	if resp.Status != 0 {
		name := ocspStatusNames[resp.Status]
		if name == "" {
			name = "undefined"
		}
		return nil, fmt.Errorf("responseStatus is %s (%d), not successful: the response carries no status", name, resp.Status)
	}
	if !resp.Response.ResponseType.Equal(oidOCSPBasic) {
		return nil, fmt.Errorf("response type %s is not id-pkix-ocsp-basic", resp.Response.ResponseType)
	}
	var basic asn1BasicResponse
	if rest, err = asn1.Unmarshal(resp.Response.Response, &basic); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("BasicOCSPResponse does not parse: %v", err)
	}
	var data asn1ResponseData
	if rest, err = asn1.Unmarshal(basic.TBSResponseData.FullBytes, &data); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("ResponseData does not parse: %v", err)
	}
	p := &ocspParsed{
		tbs:        basic.TBSResponseData.FullBytes,
		sigAlg:     signatureAlgorithm(basic.SignatureAlgorithm),
		sigAlgOID:  basic.SignatureAlgorithm.Algorithm,
		signature:  basic.Signature.RightAlign(),
		producedAt: data.ProducedAt,
	}
	switch data.RawResponderID.Tag {
	case 1:
		p.responderName = data.RawResponderID.Bytes
	case 2:
		var kh []byte
		if _, err := asn1.Unmarshal(data.RawResponderID.Bytes, &kh); err != nil {
			return nil, fmt.Errorf("responderID byKey does not parse: %v", err)
		}
		p.responderKey = kh
	default:
		return nil, fmt.Errorf("responderID has tag %d; byName [1] or byKey [2] expected", data.RawResponderID.Tag)
	}
	for _, raw := range basic.Certificates {
		c, err := x509.ParseCertificate(raw.FullBytes)
		if err != nil {
			return nil, fmt.Errorf("embedded responder certificate does not parse: %v", err)
		}
		p.certs = append(p.certs, c)
	}
	if len(data.Responses) == 0 {
		return nil, errors.New("the response holds no SingleResponse")
	}
	for _, s := range data.Responses {
		h, ok := hashByOID[s.CertID.HashAlgorithm.Algorithm.String()]
		if !ok {
			return nil, fmt.Errorf("CertID hash algorithm %s is not supported", s.CertID.HashAlgorithm.Algorithm)
		}
		if s.CertID.SerialNumber == nil {
			return nil, errors.New("CertID has no serial number")
		}
		one := ocspSingle{hash: h, nameHash: s.CertID.NameHash, keyHash: s.CertID.IssuerKeyHash, serial: s.CertID.SerialNumber,
			thisUpdate: s.ThisUpdate, nextUpdate: s.NextUpdate, reason: -1}
		switch {
		case bool(s.Good):
			one.status = ocspGood
		case bool(s.Unknown):
			one.status = ocspUnknown
		case !s.Revoked.RevocationTime.IsZero():
			one.status = ocspRevoked
			one.revokedAt = s.Revoked.RevocationTime
			one.reason = int(s.Revoked.Reason)
		default:
			return nil, errors.New("SingleResponse has no certStatus")
		}
		p.single = append(p.single, one)
	}
	for _, e := range data.Extensions {
		if e.Id.Equal(oidOCSPNonce) {
			p.nonce, p.hasNonce = e.Value, true
		}
	}
	return p, nil
}

// parseOCSPCached parses with a bounded cache: an RI sends the same OCSP response with every
// message until it refreshes it. Entries keep the DER they were parsed from (see sigMemo).
func (v *Verifier) parseOCSPCached(der []byte) (*ocspParsed, error) {
	k := maphash.Bytes(v.seed, der)
	v.cacheMu.Lock()
	e, ok := v.ocspParsed.get(k)
	v.cacheMu.Unlock()
	if ok && bytes.Equal(e.der, der) {
		return e.p, e.err
	}
	p, err := parseOCSP(der)
	v.cacheMu.Lock()
	v.ocspParsed.put(k, ocspCacheEntry{der, p, err})
	v.cacheMu.Unlock()
	return p, err
}

type ocspCacheEntry struct {
	der []byte
	p   *ocspParsed
	err error
}

// checkOCSPSig verifies the response signature with signer's key (cached per response and key).
func (v *Verifier) checkOCSPSig(p *ocspParsed, signer *x509.Certificate) error {
	return v.sigCached(p.tbs, signer.RawSubjectPublicKeyInfo, func() error {
		if p.sigAlg == x509.UnknownSignatureAlgorithm {
			return fmt.Errorf("signature algorithm %s is not supported", p.sigAlgOID)
		}
		if err := signer.CheckSignature(p.sigAlg, p.tbs, p.signature); err != nil {
			return err
		}
		return nil
	})
}

// spkiKeyBits returns the subjectPublicKey BIT STRING contents of a certificate, which OCSP
// hashes for issuerKeyHash and byKey responder IDs (not the whole SPKI, unlike ROAP IDs).
func spkiKeyBits(c *x509.Certificate) []byte {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil
	}
	return spki.PublicKey.RightAlign()
}

func hashOf(h crypto.Hash, b []byte) []byte {
	if !h.Available() {
		return nil
	}
	x := h.New()
	x.Write(b)
	return x.Sum(nil)
}

// certHashMemo is one remembered pair of CertID hashes of a certificate. It keeps the bytes they
// were computed from, so a collision of the map hash can only cost a recomputation (see
// sigMemo).
type certHashMemo struct {
	subject, spki []byte
	h             crypto.Hash
	name, key     []byte
}

// certHashes returns the CertID hashes of issuer (of its DER subject and of its subjectPublicKey
// bits) under h. They are remembered across messages: every RI message repeats the same chain
// and OCSP response, and parsing the key and hashing it again cost more than the rest of
// judging the response.
func (v *Verifier) certHashes(issuer *x509.Certificate, h crypto.Hash) (name, key []byte) {
	var mh maphash.Hash
	mh.SetSeed(v.seed)
	mh.WriteByte(byte(h))
	mh.Write(issuer.RawSubject)
	mh.WriteByte(0)
	mh.Write(issuer.RawSubjectPublicKeyInfo)
	k := mh.Sum64()
	v.cacheMu.Lock()
	e, ok := v.certHashMemos.get(k)
	v.cacheMu.Unlock()
	if ok && e.h == h && bytes.Equal(e.subject, issuer.RawSubject) && bytes.Equal(e.spki, issuer.RawSubjectPublicKeyInfo) {
		return e.name, e.key
	}
	name, key = hashOf(h, issuer.RawSubject), hashOf(h, spkiKeyBits(issuer))
	v.cacheMu.Lock()
	v.certHashMemos.put(k, &certHashMemo{subject: issuer.RawSubject, spki: issuer.RawSubjectPublicKeyInfo, h: h, name: name, key: key})
	v.cacheMu.Unlock()
	return name, key
}

// about reports whether single response s is about cert as issued by issuer.
func (v *Verifier) about(s *ocspSingle, cert, issuer *x509.Certificate) (serialMatch, issuerMatch bool) {
	serialMatch = s.serial.Cmp(cert.SerialNumber) == 0
	name, key := v.certHashes(issuer, s.hash)
	issuerMatch = bytes.Equal(s.nameHash, name) && bytes.Equal(s.keyHash, key)
	return
}

// responderIs reports whether c is the responder p names.
func (v *Verifier) responderIs(p *ocspParsed, c *x509.Certificate) bool {
	if p.responderName != nil {
		return bytes.Equal(p.responderName, c.RawSubject)
	}
	_, kh := v.certHashes(c, crypto.SHA1)
	return bytes.Equal(p.responderKey, kh)
}

func (p *ocspParsed) responderString() string {
	if p.responderName != nil {
		var n pkix.RDNSequence
		if _, err := asn1.Unmarshal(p.responderName, &n); err == nil {
			return "responder " + n.String()
		}
		return "responder (unparseable name)"
	}
	return "responder key hash " + hex.EncodeToString(p.responderKey)
}

var revocationReasons = map[int]string{0: "unspecified", 1: "keyCompromise", 2: "cACompromise", 3: "affiliationChanged", 4: "superseded", 5: "cessationOfOperation", 6: "certificateHold", 8: "removeFromCRL", 9: "privilegeWithdrawn", 10: "aACompromise"}

func hasEKU(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	for _, x := range c.ExtKeyUsage {
		if x == u {
			return true
		}
	}
	return false
}

// ocspInput is what judgeOCSP needs.
type ocspInput struct {
	blobs     []decode.OCSPBlob
	chain     []*x509.Certificate // RI path: leaf first, completed to the anchor when known
	anchored  bool
	at        time.Time
	nonce     []byte // device nonce (registration), checked when wantNonce
	wantNonce bool
}

// ocspVerdict summarizes judgeOCSP.
type ocspVerdict struct {
	findings []decode.Finding
	leafGood bool // a valid, fresh, good response for the RI leaf was found
	problems int  // error findings
}

// judgeOCSP checks every OCSP response of a message against the RI chain.
func (v *Verifier) judgeOCSP(in ocspInput) *ocspVerdict {
	out := &ocspVerdict{}
	add := func(f decode.Finding) {
		out.findings = append(out.findings, f)
		if f.Severity == decode.SevError {
			out.problems++
		}
	}
	if len(in.chain) == 0 {
		return out
	}
	leaf := in.chain[0]
	covered := make([]bool, len(in.chain))
	leafOK := false
	for _, blob := range in.blobs {
		p, err := v.parseOCSPCached(blob.DER)
		if err != nil {
			add(RuleOCSPMalformed.At(blob.Path, "%v", err))
			continue
		}
		// Which certificates of the chain does it speak about?
		type target struct {
			idx int
			s   *ocspSingle
		}
		var targets []target
		for si := range p.single {
			s := &p.single[si]
			for i := 0; i+1 < len(in.chain); i++ {
				serial, issuer := v.about(s, in.chain[i], in.chain[i+1])
				switch {
				case serial && issuer:
					targets = append(targets, target{i, s})
				case serial && i == 0:
					add(RuleOCSPCertID.At(blob.Path, "the response names the RI certificate's serial %s but its issuer name/key hashes do not match %s", leaf.SerialNumber.Text(16), certName(in.chain[1])))
				}
			}
		}
		if len(targets) == 0 {
			// A response about the chain's last certificate names an issuer the path does not
			// hold when no anchor completed it (the root is never sent): that is unknown, not wrong.
			top := in.chain[len(in.chain)-1]
			if !in.anchored && slices.ContainsFunc(p.single, func(s ocspSingle) bool { return s.serial.Cmp(top.SerialNumber) == 0 }) {
				add(RuleOCSPCertID.AtSev(sevI, blob.Path, "the response is about %s, whose issuer is not known without a trust anchor (--trust): not checked", certName(top)))
				continue
			}
			add(RuleOCSPCertID.At(blob.Path, "the response covers no certificate of the RI chain (serial %s first)", p.single[0].serial.Text(16)))
			continue
		}
		issuer := in.chain[targets[0].idx+1]
		blobOK := v.judgeResponder(p, issuer, in, blob.Path, add)

		if in.wantNonce && targets[0].idx == 0 {
			switch {
			case !p.hasNonce:
				add(RuleOCSPNonce.AtSev(sevW, blob.Path, "the OCSP response for the RI certificate carries no nonce, so it cannot be bound to this registration's device nonce"))
			case !nonceMatches(p.nonce, in.nonce):
				blobOK = false
				add(RuleOCSPNonce.At(blob.Path, "OCSP nonce %x differs from the device nonce %x of the registrationRequest (raw or OCTET STRING-wrapped accepted)", clipBytes(p.nonce), clipBytes(in.nonce)))
			}
		}
		for _, t := range targets {
			covered[t.idx] = true
			c := in.chain[t.idx]
			// Named only when a finding needs it.
			what := func() string {
				if t.idx > 0 {
					return "RI chain certificate " + certName(c)
				}
				return "RI certificate " + certName(c)
			}
			ok := blobOK
			switch t.s.status {
			case ocspRevoked:
				ok = false
				reason := ""
				if r, known := revocationReasons[t.s.reason]; known {
					reason = ", reason " + r
				}
				add(RuleOCSPRevoked.At(blob.Path, "%s is revoked since %s%s", what(), t.s.revokedAt.UTC().Format(time.RFC3339), reason))
			case ocspUnknown:
				ok = false
				add(RuleOCSPUnknown.At(blob.Path, "the responder does not know %s (status unknown)", what()))
			}
			skew := v.opts.OCSPSkew
			switch {
			case t.s.thisUpdate.After(in.at.Add(skew)):
				ok = false
				add(RuleOCSPStale.At(blob.Path, "thisUpdate %s is after the message time %s (skew allowance %s)", t.s.thisUpdate.UTC().Format(time.RFC3339), in.at.UTC().Format(time.RFC3339), skew))
			case !t.s.nextUpdate.IsZero() && in.at.After(t.s.nextUpdate.Add(skew)):
				ok = false
				add(RuleOCSPStale.At(blob.Path, "nextUpdate %s has passed at the message time %s: the status of %s is stale", t.s.nextUpdate.UTC().Format(time.RFC3339), in.at.UTC().Format(time.RFC3339), what()))
			case t.s.nextUpdate.IsZero() && in.at.Sub(p.producedAt) > v.opts.OCSPMaxAge:
				ok = false
				add(RuleOCSPStale.At(blob.Path, "no nextUpdate, and producedAt %s is older than the maximum age %s at the message time %s", p.producedAt.UTC().Format(time.RFC3339), v.opts.OCSPMaxAge, in.at.UTC().Format(time.RFC3339)))
			}
			if t.idx == 0 && ok {
				leafOK = true
			}
		}
	}
	if !covered[0] {
		add(RuleOCSPCertID.At(in.blobs[0].Path, "no OCSP response covers the RI certificate %s (serial %s)", certName(leaf), leaf.SerialNumber.Text(16)))
	}
	last := len(in.chain) - 1
	if !in.anchored {
		last++ // the top certificate's issuer is not known: it could still need a status
	}
	for i := 1; i < last && i < len(in.chain)-1; i++ {
		if !covered[i] {
			r := RuleOCSPCoverage
			out.findings = append(out.findings, decode.Finding{Rule: r.ID, Severity: r.Severity, Ref: r.Ref, Path: in.blobs[0].Path, Message: v.coverageGap(in.chain[i])})
		}
	}
	out.leafGood = leafOK
	return out
}

// coverageGap is the OCSP-COVERAGE message for c. RIs rarely send a status for their
// intermediates, so every response of a chain says it: the text is built once per certificate
// (decode hands out the same certificate for the same bytes).
func (v *Verifier) coverageGap(c *x509.Certificate) string {
	return remember(&v.cacheMu, v.gapTexts, c, func() string {
		return fmt.Sprintf("no OCSP response covers RI chain certificate %s (devices check only the leaf)", certName(c))
	})
}

// judgeResponder checks who signed p and whether it may speak for issuer's certificates.
func (v *Verifier) judgeResponder(p *ocspParsed, issuer *x509.Certificate, in ocspInput, path string, add func(decode.Finding)) bool {
	var signer *x509.Certificate
	for _, c := range p.certs {
		if v.responderIs(p, c) {
			signer = c
			break
		}
	}
	if signer == nil && v.responderIs(p, issuer) {
		signer = issuer
	}
	if signer == nil {
		add(RuleOCSPResponder.At(path, "%s is neither the issuing CA %s nor a certificate included in the response: the response cannot be checked", p.responderString(), certName(issuer)))
		return false
	}
	if err := v.checkOCSPSig(p, signer); err != nil {
		add(RuleOCSPSig.At(path, "OCSP response signature by %s does not verify: %v", certName(signer), err))
		return false
	}
	if bytes.Equal(signer.RawSubjectPublicKeyInfo, issuer.RawSubjectPublicKeyInfo) {
		return true // the CA answers for its own certificates
	}
	// A delegated responder: issued by the CA that issued the certificate, with id-kp-OCSPSigning,
	// valid now (RFC 6960 §4.2.2.2).
	var problems []string
	issuedByCA := bytes.Equal(signer.RawIssuer, issuer.RawSubject) && v.link(signer, issuer) == nil
	if !issuedByCA {
		problems = append(problems, fmt.Sprintf("is not issued by %s, the CA that issued the certificate", certName(issuer)))
	}
	if !hasEKU(signer, x509.ExtKeyUsageOCSPSigning) {
		problems = append(problems, "lacks id-kp-OCSPSigning")
	}
	if in.at.After(signer.NotAfter) || in.at.Before(signer.NotBefore) {
		problems = append(problems, fmt.Sprintf("is not valid at %s (valid %s to %s)", in.at.UTC().Format(time.RFC3339), signer.NotBefore.UTC().Format(time.RFC3339), signer.NotAfter.UTC().Format(time.RFC3339)))
	}
	if len(problems) == 0 {
		return true
	}
	// Symbian tolerates a responder issued directly by the root ("CoreMedia" workaround,
	// roap-core §8.4): a warning when that is the only problem.
	if !issuedByCA && len(problems) == 1 && in.anchored && len(in.chain) >= 2 {
		root := in.chain[len(in.chain)-1]
		if bytes.Equal(signer.RawIssuer, root.RawSubject) && v.link(signer, root) == nil {
			add(RuleOCSPResponder.AtSev(sevW, path, "responder %s is issued by the root %s, not by the CA %s that issued the certificate (tolerated by Symbian, not by RFC 6960)", certName(signer), certName(root), certName(issuer)))
			return true
		}
	}
	add(RuleOCSPResponder.At(path, "responder certificate %s %s", certName(signer), joinAnd(problems)))
	return false
}

// nonceMatches accepts the nonce extension value as the raw nonce or as a DER OCTET STRING
// wrapping it (both occur: Symbian accepts either, roap-core §8.4).
func nonceMatches(ext, nonce []byte) bool {
	if len(nonce) == 0 {
		return false
	}
	if bytes.Equal(ext, nonce) {
		return true
	}
	var inner []byte
	if rest, err := asn1.Unmarshal(ext, &inner); err == nil && len(rest) == 0 {
		return bytes.Equal(inner, nonce)
	}
	return false
}

func clipBytes(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := ""
	for i, x := range s {
		switch {
		case i == 0:
		case i == len(s)-1:
			out += " and "
		default:
			out += ", "
		}
		out += x
	}
	return out
}
