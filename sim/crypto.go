package sim

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"time"

	"github.com/roapproxy/roapproxy/decode"
)

// The cryptography of ROAP (roap-core §7) as the simulated peers need it. Everything is written
// out from the algorithm descriptions so that the verifier is tested against an independent
// implementation of the same formulas, and so that the key-transport layout is visible in one
// place: RSA-KEM with raw RSA, KDF2 over SHA-1, then RFC 3394 key wrap.

// pssOpts are the PKCS#1 "rsa-pss-default" parameters ROAP uses: SHA-1, MGF1-SHA-1, 20-byte salt.
var pssOpts = &rsa.PSSOptions{SaltLength: sha1.Size, Hash: crypto.SHA1}

// SignPSS signs the concatenation of parts with RSASSA-PSS (SHA-1, MGF1-SHA-1, salt 20). ROAP
// registration messages are signed over several messages back to back, hence the parts.
func SignPSS(key *rsa.PrivateKey, parts ...[]byte) ([]byte, error) {
	if key == nil {
		return nil, errors.New("sim: no signing key")
	}
	h := sha1.New()
	for _, p := range parts {
		h.Write(p)
	}
	return rsa.SignPSS(rand.Reader, key, crypto.SHA1, h.Sum(nil), pssOpts)
}

// VerifyPSS checks an RSASSA-PSS signature made by SignPSS over the concatenation of parts.
func VerifyPSS(pub *rsa.PublicKey, sig []byte, parts ...[]byte) error {
	if pub == nil {
		return errors.New("sim: no public key to verify with")
	}
	h := sha1.New()
	for _, p := range parts {
		h.Write(p)
	}
	if err := rsa.VerifyPSS(pub, crypto.SHA1, h.Sum(nil), sig, pssOpts); err != nil {
		return fmt.Errorf("RSA-PSS signature does not verify: %w", err)
	}
	return nil
}

// KDF2 is the ISO 18033-2 / ANSI X9.44 KDF2 with SHA-1: T = SHA-1(Z || C(1) || other) ||
// SHA-1(Z || C(2) || other) || …, truncated to n bytes, where C is a 32-bit big-endian counter
// starting at 1.
func KDF2(z, otherInfo []byte, n int) []byte {
	out := make([]byte, 0, n+sha1.Size)
	var ctr [4]byte
	for i := uint32(1); len(out) < n; i++ {
		binary.BigEndian.PutUint32(ctr[:], i)
		h := sha1.New()
		h.Write(z)
		h.Write(ctr[:])
		h.Write(otherInfo)
		out = h.Sum(out)
	}
	return out[:n]
}

// aesWrapIV is the RFC 3394 default initial value.
var aesWrapIV = [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

// AESWrap wraps plaintext (a multiple of 8 bytes, at least 16) under kek per RFC 3394 §2.2.1.
func AESWrap(kek, plaintext []byte) ([]byte, error) {
	if len(plaintext)%8 != 0 || len(plaintext) < 16 {
		return nil, fmt.Errorf("sim: AES key wrap needs a multiple of 8 bytes, at least 16; got %d", len(plaintext))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("sim: AES key wrap: %w", err)
	}
	n := len(plaintext) / 8
	r := make([]byte, len(plaintext))
	copy(r, plaintext)
	a := aesWrapIV
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 0; i < n; i++ {
			copy(buf[:8], a[:])
			copy(buf[8:], r[i*8:i*8+8])
			block.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i + 1)
			msb := binary.BigEndian.Uint64(buf[:8]) ^ t
			binary.BigEndian.PutUint64(a[:], msb)
			copy(r[i*8:], buf[8:])
		}
	}
	return append(a[:], r...), nil
}

// AESUnwrap reverses AESWrap and checks the integrity value.
func AESUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped)%8 != 0 || len(wrapped) < 24 {
		return nil, fmt.Errorf("sim: AES key unwrap needs a multiple of 8 bytes, at least 24; got %d", len(wrapped))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("sim: AES key unwrap: %w", err)
	}
	n := len(wrapped)/8 - 1
	var a [8]byte
	copy(a[:], wrapped[:8])
	r := make([]byte, n*8)
	copy(r, wrapped[8:])
	var buf [16]byte
	for j := 5; j >= 0; j-- {
		for i := n - 1; i >= 0; i-- {
			t := uint64(n*j + i + 1)
			binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(a[:])^t)
			copy(buf[8:], r[i*8:i*8+8])
			block.Decrypt(buf[:], buf[:])
			copy(a[:], buf[:8])
			copy(r[i*8:], buf[8:])
		}
	}
	if subtle.ConstantTimeCompare(a[:], aesWrapIV[:]) != 1 {
		return nil, errors.New("sim: AES key unwrap: integrity check failed (wrong key or damaged data)")
	}
	return r, nil
}

// KEMEncrypt transports keys (K_MAC || K_REK, or K_MAC || K_D, 32 bytes in ROAP) to the holder
// of pub with RSA-KEM-KWS (roap-core §7.5): Z random below the modulus, C1 = Z^e mod n as a
// modulus-length octet string, KEK = KDF2-SHA1(Z, 16 bytes), C2 = AES-WRAP(KEK, keys).
// The result is C1 || C2.
func KEMEncrypt(random io.Reader, pub *rsa.PublicKey, keys []byte) ([]byte, error) {
	if pub == nil {
		return nil, errors.New("sim: KEM: no recipient key")
	}
	if random == nil {
		random = rand.Reader
	}
	k := (pub.N.BitLen() + 7) / 8
	z, err := rand.Int(random, pub.N)
	if err != nil {
		return nil, fmt.Errorf("sim: KEM: %w", err)
	}
	zb := z.FillBytes(make([]byte, k))
	c1 := new(big.Int).Exp(z, big.NewInt(int64(pub.E)), pub.N).FillBytes(make([]byte, k))
	c2, err := AESWrap(KDF2(zb, nil, 16), keys)
	if err != nil {
		return nil, err
	}
	return append(c1, c2...), nil
}

// KEMDecrypt reverses KEMEncrypt with the recipient's private key.
func KEMDecrypt(priv *rsa.PrivateKey, c []byte) ([]byte, error) {
	if priv == nil {
		return nil, errors.New("sim: KEM: no private key")
	}
	k := (priv.N.BitLen() + 7) / 8
	if len(c) < k+24 {
		return nil, fmt.Errorf("sim: KEM ciphertext of %d bytes is shorter than C1 (%d) plus a wrapped key", len(c), k)
	}
	c1 := new(big.Int).SetBytes(c[:k])
	if c1.Cmp(priv.N) >= 0 {
		return nil, errors.New("sim: KEM: C1 is not below the modulus")
	}
	z := new(big.Int).Exp(c1, priv.D, priv.N)
	return AESUnwrap(KDF2(z.FillBytes(make([]byte, k)), nil, 16), c[k:])
}

// MACAlg names the HMAC used on RDP messages (and, fixed to SHA-1, inside ROAP).
type MACAlg string

// MAC algorithms, by their XML-DSig URIs.
const (
	HMACSHA1   MACAlg = decode.AlgHMAC1
	HMACSHA256 MACAlg = decode.AlgHMAC2
)

func (a MACAlg) hash() (func() hash.Hash, error) {
	switch a {
	case HMACSHA1, "":
		return sha1.New, nil
	case HMACSHA256:
		return sha256.New, nil
	}
	return nil, fmt.Errorf("sim: unknown MAC algorithm %q", string(a))
}

// MAC computes HMAC(key, data) with alg (HMAC-SHA1 when alg is empty).
func MAC(alg MACAlg, key, data []byte) ([]byte, error) {
	h, err := alg.hash()
	if err != nil {
		return nil, err
	}
	m := hmac.New(h, key)
	m.Write(data)
	return m.Sum(nil), nil
}

// CheckMAC verifies a MAC in constant time.
func CheckMAC(alg MACAlg, key, data, mac []byte) error {
	want, err := MAC(alg, key, data)
	if err != nil {
		return err
	}
	if !hmac.Equal(want, mac) {
		return errors.New("MAC does not verify")
	}
	return nil
}

// randomBytes returns n bytes from crypto/rand.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		// crypto/rand does not fail on supported platforms; a nil-filled nonce would be worse
		// than stopping.
		panic("sim: crypto/rand failed: " + err.Error())
	}
	return b
}

// newNonce returns a fresh base64 nonce. 20 bytes: above the 14-octet minimum (roap-core §3.3).
func newNonce() string { return base64.StdEncoding.EncodeToString(randomBytes(20)) }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// flipB64 returns the base64 value with one bit of its decoded content changed: still valid
// base64 (so decoders do not trip over it) but no longer the value that was computed.
func flipB64(s string) string {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) == 0 {
		return s
	}
	raw[len(raw)/2] ^= 0x01
	return b64(raw)
}

// ---- certificate chains and OCSP, as a careful peer checks them ----

// validateChain checks chain (leaf first, no root) against roots at time at: each certificate is
// issued by the next, the last by one of roots, every certificate is within its validity, and
// every issuer is a CA. x509.Certificate.Verify is not used because it refuses SHA-1 signatures,
// which fielded DRM PKIs carry.
func validateChain(chain []*x509.Certificate, roots []*x509.Certificate, at time.Time) error {
	if len(chain) == 0 {
		return errors.New("empty certificate chain")
	}
	for i, c := range chain {
		if at.Before(c.NotBefore) || at.After(c.NotAfter) {
			return fmt.Errorf("certificate %q is not valid at %s (valid %s to %s)", c.Subject.CommonName,
				TimeString(at), TimeString(c.NotBefore), TimeString(c.NotAfter))
		}
		if i+1 < len(chain) {
			p := chain[i+1]
			if !p.IsCA {
				return fmt.Errorf("certificate %q is not a CA but issues %q", p.Subject.CommonName, c.Subject.CommonName)
			}
			if err := CheckIssuedBy(c, p); err != nil {
				return err
			}
		}
	}
	last := chain[len(chain)-1]
	for _, r := range roots {
		if bytes.Equal(last.RawIssuer, r.RawSubject) && CheckIssuedBy(last, r) == nil {
			if at.Before(r.NotBefore) || at.After(r.NotAfter) {
				return fmt.Errorf("trust anchor %q is not valid at %s", r.Subject.CommonName, TimeString(at))
			}
			return nil
		}
	}
	return errUntrustedRoot
}

var errUntrustedRoot = errors.New("the chain does not end under a trusted root")

// hasKeyPurpose reports whether c lists oid in its extended key usage extension.
func hasKeyPurpose(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, u := range c.UnknownExtKeyUsage {
		if u.Equal(oid) {
			return true
		}
	}
	if oid.Equal(OIDKPOCSPSigning) {
		for _, u := range c.ExtKeyUsage {
			if u == x509.ExtKeyUsageOCSPSigning {
				return true
			}
		}
	}
	return false
}

// rsaKey returns the RSA public key of c: ROAP signs and transports keys with RSA only.
func rsaKey(c *x509.Certificate) (*rsa.PublicKey, error) {
	k, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("certificate %q does not hold an RSA key", c.Subject.CommonName)
	}
	return k, nil
}

// parseChainDER parses base64-decoded certificates.
func parseChainDER(ders [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// ocspResult is what a peer learns from one OCSP response about one certificate.
type ocspResult struct {
	Status     string // good, revoked, unknown
	ProducedAt time.Time
	ThisUpdate time.Time
	NextUpdate time.Time
	Nonce      []byte
	HasNonce   bool
}

// checkOCSPResponse parses a DER OCSPResponse, finds the entry for cert and checks that the
// response is signed by issuer itself or by a responder that issuer certified for OCSP signing
// (RFC 6960 §4.2.2.2). Freshness and the nonce are left to the caller, who knows what to expect.
func checkOCSPResponse(der []byte, cert, issuer *x509.Certificate) (*ocspResult, error) {
	var resp ocspResponseASN1
	if rest, err := asn1.Unmarshal(der, &resp); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("malformed OCSP response: %v", errOr(err, "trailing data"))
	}
	if resp.Status != ocspSuccessful {
		return nil, fmt.Errorf("OCSP response status %d", resp.Status)
	}
	if !resp.ResponseBytes.ResponseType.Equal(oidOCSPBasic) {
		return nil, errors.New("OCSP response is not id-pkix-ocsp-basic")
	}
	var basic ocspBasicResponse
	if rest, err := asn1.Unmarshal(resp.ResponseBytes.Response, &basic); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("malformed BasicOCSPResponse: %v", errOr(err, "trailing data"))
	}
	var tbs ocspResponseData
	if rest, err := asn1.Unmarshal(basic.TBSResponseData.FullBytes, &tbs); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("malformed ResponseData: %v", errOr(err, "trailing data"))
	}
	var h crypto.Hash
	switch {
	case basic.SignatureAlgorithm.Algorithm.Equal(oidSHA1WithRSA):
		h = crypto.SHA1
	case basic.SignatureAlgorithm.Algorithm.Equal(oidSHA256WithRSA):
		h = crypto.SHA256
	default:
		return nil, fmt.Errorf("OCSP signature algorithm %v not supported", basic.SignatureAlgorithm.Algorithm)
	}
	candidates := []*x509.Certificate{issuer}
	for _, raw := range basic.Certs {
		c, err := x509.ParseCertificate(raw.FullBytes)
		if err != nil {
			return nil, fmt.Errorf("OCSP responder certificate: %w", err)
		}
		candidates = append(candidates, c)
	}
	dig := h.New()
	dig.Write(basic.TBSResponseData.FullBytes)
	sum := dig.Sum(nil)
	var signed bool
	for _, c := range candidates {
		pub, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok || rsa.VerifyPKCS1v15(pub, h, sum, basic.Signature.RightAlign()) != nil {
			continue
		}
		authorized := bytes.Equal(c.Raw, issuer.Raw) ||
			(CheckIssuedBy(c, issuer) == nil && hasKeyPurpose(c, OIDKPOCSPSigning))
		if !authorized {
			return nil, fmt.Errorf("OCSP response signed by %q, who is not authorized by %q", c.Subject.CommonName, issuer.Subject.CommonName)
		}
		signed = true
		break
	}
	if !signed {
		return nil, errors.New("OCSP response signature does not verify with the issuer or an included responder certificate")
	}
	want, err := certIDWith(crypto.SHA1, cert.SerialNumber, issuer)
	if err != nil {
		return nil, err
	}
	for _, s := range tbs.Responses {
		if s.CertID.SerialNumber == nil || s.CertID.SerialNumber.Cmp(cert.SerialNumber) != 0 {
			continue
		}
		if s.CertID.HashAlgorithm.Algorithm.Equal(oidSHA1) && !bytes.Equal(s.CertID.IssuerKeyHash, want.IssuerKeyHash) {
			continue
		}
		r := &ocspResult{ProducedAt: tbs.ProducedAt, ThisUpdate: s.ThisUpdate, NextUpdate: s.NextUpdate}
		switch s.CertStatus.Tag {
		case 0:
			r.Status = "good"
		case 1:
			r.Status = "revoked"
		default:
			r.Status = "unknown"
		}
		r.Nonce, r.HasNonce, _ = findNonce(tbs.ResponseExtensions)
		return r, nil
	}
	return nil, fmt.Errorf("OCSP response has no entry for serial %s", cert.SerialNumber)
}

// ocspSkew is how far an OCSP thisUpdate may lie in the future of the checker's clock.
const ocspSkew = 5 * time.Minute

// fresh reports whether the response is current at now.
func (r *ocspResult) fresh(now time.Time) error {
	if r.ThisUpdate.After(now.Add(ocspSkew)) {
		return fmt.Errorf("OCSP thisUpdate %s is in the future", TimeString(r.ThisUpdate))
	}
	if !r.NextUpdate.IsZero() && now.After(r.NextUpdate) {
		return fmt.Errorf("OCSP response is stale: nextUpdate %s is before %s", TimeString(r.NextUpdate), TimeString(now))
	}
	return nil
}

// aesCBCEncrypt encrypts with AES-128-CBC the way XML Encryption carries it: a random IV, then
// the ciphertext of the data padded to the block size (the last byte gives the pad length).
func aesCBCEncrypt(key, plain []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	data := append(append([]byte(nil), plain...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	out := append(randomBytes(aes.BlockSize), make([]byte, len(data))...)
	cipher.NewCBCEncrypter(block, out[:aes.BlockSize]).CryptBlocks(out[aes.BlockSize:], data)
	return out, nil
}

// aesCBCDecrypt reverses aesCBCEncrypt.
func aesCBCDecrypt(key, data []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if len(data) < 2*aes.BlockSize || len(data)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("AES-CBC data of %d bytes is not an IV plus whole blocks", len(data))
	}
	out := make([]byte, len(data)-aes.BlockSize)
	cipher.NewCBCDecrypter(block, data[:aes.BlockSize]).CryptBlocks(out, data[aes.BlockSize:])
	pad := int(out[len(out)-1])
	if pad == 0 || pad > aes.BlockSize {
		return nil, errors.New("AES-CBC padding is wrong (wrong key?)")
	}
	return out[:len(out)-pad], nil
}
