package verify

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/subtle"
	"errors"
	"sync"

	"github.com/roapproxy/roapproxy/verify/internal/modexp"
)

// ROAP signatures are RSASSA-PSS with SHA-1 and a 20-byte salt (roap-core §7.2). crypto/rsa
// rebuilds the Montgomery form of the public modulus on every verification, which is a third of
// the cost of checking one signature, and its arithmetic is constant-time, which a public-key
// operation does not need; a proxy checks thousands of signatures under the same few RI and
// device keys. verifyPSS20 keeps the modulus per key, raises the signature to the public exponent
// with package modexp (variable-time, with a dedicated squaring) and does the rest of RFC 8017
// §8.1.2 itself. Its answers are crypto/rsa's (a differential test and a fuzz target hold it to
// that); where it declines a key it cannot treat the same way, the caller uses crypto/rsa.

// errPSS is any PSS verification failure; like crypto/rsa, it does not say which step failed.
var errPSS = errors.New("verify: RSASSA-PSS verification error")

// errPSSDeclined means verifyPSS20 does not handle the key: the caller must use crypto/rsa.
var errPSSDeclined = errors.New("verify: key not handled by the cached verifier")

// moduli keeps the Montgomery modulus of the keys seen, by key. Certificates are cached by
// decode, so the same key arrives as the same *rsa.PublicKey.
var moduli = struct {
	sync.Mutex
	m map[*rsa.PublicKey]*modexp.Modulus
}{m: map[*rsa.PublicKey]*modexp.Modulus{}}

// maxModuli bounds the cache; past it the cache starts again (a few hundred bytes each).
const maxModuli = 4096

func modulusOf(pub *rsa.PublicKey) (*modexp.Modulus, error) {
	moduli.Lock()
	m, ok := moduli.m[pub]
	moduli.Unlock()
	if ok {
		return m, nil
	}
	m, err := modexp.NewModulus(pub.N)
	if err != nil {
		return nil, err
	}
	moduli.Lock()
	if len(moduli.m) >= maxModuli {
		clear(moduli.m)
	}
	moduli.m[pub] = m
	moduli.Unlock()
	return m, nil
}

// verifyPSS20 verifies an RSASSA-PSS signature with SHA-1, MGF1-SHA-1 and a 20-byte salt over
// digest. It returns errPSSDeclined for keys that crypto/rsa treats specially (under 1024 bits,
// which it refuses by default; an even modulus; an exponent it would reject; moduli over 16384
// bits).
func verifyPSS20(pub *rsa.PublicKey, digest, sig []byte) error {
	const hLen, sLen = sha1.Size, 20
	if pub == nil || pub.N == nil || pub.N.BitLen() < 1024 || pub.N.BitLen() > 16384 || pub.N.Bit(0) == 0 ||
		pub.E < 3 || pub.E&1 == 0 || pub.E > 1<<31-1 {
		return errPSSDeclined
	}
	if len(digest) != hLen {
		return errPSS
	}
	m, err := modulusOf(pub)
	if err != nil {
		return errPSSDeclined
	}
	k := m.Size()
	if len(sig) != k {
		return errPSS
	}
	// RSAVP1: s < n, em = s^e mod n.
	em, err := m.Exp(sig, uint(pub.E))
	if err != nil {
		return errPSS
	}

	// EMSA-PSS-VERIFY with emBits = modBits - 1 (RFC 8017 §9.1.2).
	emBits := m.BitLen() - 1
	emLen := (emBits + 7) / 8
	if emLen < k {
		// The modulus has one bit past a byte boundary: the encoding is a byte shorter and
		// the leading byte must be zero.
		if em[0] != 0 {
			return errPSS
		}
		em = em[1:]
	}
	if emLen < hLen+sLen+2 || em[emLen-1] != 0xbc {
		return errPSS
	}
	db, h := em[:emLen-hLen-1], em[emLen-hLen-1:emLen-1]
	topMask := byte(0xff >> (8*emLen - emBits))
	if db[0]&^topMask != 0 {
		return errPSS
	}
	mgf1XORSHA1(db, h)
	db[0] &= topMask
	psLen := emLen - hLen - sLen - 2
	for _, b := range db[:psLen] {
		if b != 0 {
			return errPSS
		}
	}
	if db[psLen] != 0x01 {
		return errPSS
	}
	salt := db[len(db)-sLen:]
	hh := sha1.New()
	var zeroes [8]byte
	hh.Write(zeroes[:])
	hh.Write(digest)
	hh.Write(salt)
	var sum [hLen]byte
	if subtle.ConstantTimeCompare(hh.Sum(sum[:0]), h) != 1 {
		return errPSS
	}
	return nil
}

// mgf1XORSHA1 XORs out with MGF1-SHA-1(seed) (RFC 8017 §B.2.1). The seed and counter are hashed
// from one buffer with sha1.Sum, without a hash.Hash: a 2048-bit mask is twelve of these.
func mgf1XORSHA1(out, seed []byte) {
	var stack [64]byte
	in := append(stack[:0], seed...)
	in = append(in, 0, 0, 0, 0)
	counter := in[len(seed):]
	for done := 0; done < len(out); {
		digest := sha1.Sum(in)
		done += subtle.XORBytes(out[done:], out[done:], digest[:])
		for i := 3; i >= 0; i-- {
			if counter[i]++; counter[i] != 0 {
				break
			}
		}
	}
}
