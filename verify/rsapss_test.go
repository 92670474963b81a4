package verify

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"math/big"
	"testing"
)

// stdPSS20 is what verifyPSS20 must agree with.
func stdPSS20(pub *rsa.PublicKey, digest, sig []byte) error {
	return rsa.VerifyPSS(pub, crypto.SHA1, digest, sig, &rsa.PSSOptions{SaltLength: 20, Hash: crypto.SHA1})
}

func TestVerifyPSS20AgreesWithCryptoRSA(t *testing.T) {
	digest := sha1.Sum([]byte("<roap:roRequest>…</roap:roRequest>"))
	other := sha1.Sum([]byte("something else"))
	// 1025 and 2049 bits: the encoded message is a byte shorter than the modulus.
	for _, bits := range []int{1024, 1025, 2048, 2049} {
		key, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		pub := &key.PublicKey
		sign := func(salt int) []byte {
			s, err := rsa.SignPSS(rand.Reader, key, crypto.SHA1, digest[:], &rsa.PSSOptions{SaltLength: salt, Hash: crypto.SHA1})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		good := sign(20)
		pkcs1, _ := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA1, digest[:])
		flipped := append([]byte(nil), good...)
		flipped[len(flipped)/2] ^= 0x10
		overN := new(big.Int).Add(pub.N, big.NewInt(1)).FillBytes(make([]byte, len(good)))
		cases := []struct {
			name        string
			digest, sig []byte
			valid       bool
		}{
			{"salt 20", digest[:], good, true},
			{"salt 32", digest[:], sign(32), false},
			{"salt 0", digest[:], sign(0), false},
			{"PKCS#1 v1.5", digest[:], pkcs1, false},
			{"another digest", other[:], good, false},
			{"a flipped bit", digest[:], flipped, false},
			{"one byte short", digest[:], good[1:], false},
			{"a byte too long", digest[:], append([]byte{0}, good...), false},
			{"over the modulus", digest[:], overN, false},
			{"zero", digest[:], make([]byte, len(good)), false},
			{"short digest", digest[:10], good, false},
		}
		for _, c := range cases {
			got, std := verifyPSS20(pub, c.digest, c.sig), stdPSS20(pub, c.digest, c.sig)
			if (got == nil) != (std == nil) || (got == nil) != c.valid {
				t.Errorf("%d bits, %s: cached verifier says %v, crypto/rsa %v, want valid=%v", bits, c.name, got, std, c.valid)
			}
		}
		// The same key again comes from the cache and still answers the same.
		if err := verifyPSS20(pub, digest[:], good); err != nil {
			t.Errorf("%d bits: second check: %v", bits, err)
		}
	}
}

func TestVerifyPSS20DeclinesWhatCryptoRSATreatsSpecially(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha1.Sum([]byte("x"))
	sig, _ := rsa.SignPSS(rand.Reader, key, crypto.SHA1, digest[:], &rsa.PSSOptions{SaltLength: 20})
	for name, pub := range map[string]*rsa.PublicKey{
		"512 bits":     {N: new(big.Int).Rsh(key.N, 512), E: 65537},
		"even modulus": {N: new(big.Int).Add(key.N, big.NewInt(1)), E: 65537},
		"even e":       {N: key.N, E: 65536},
		"e = 1":        {N: key.N, E: 1},
		"nil":          nil,
	} {
		if err := verifyPSS20(pub, digest[:], sig); err != errPSSDeclined {
			t.Errorf("%s: got %v, want the key declined", name, err)
		}
	}
}

var fuzzKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	return k
}()

// FuzzVerifyPSS20 holds the cached verifier to crypto/rsa's answer on arbitrary signatures.
func FuzzVerifyPSS20(f *testing.F) {
	digest := sha1.Sum([]byte("seed"))
	good, _ := rsa.SignPSS(rand.Reader, fuzzKey, crypto.SHA1, digest[:], &rsa.PSSOptions{SaltLength: 20})
	f.Add(digest[:], good)
	f.Add(digest[:], make([]byte, len(good)))
	f.Fuzz(func(t *testing.T, d, sig []byte) {
		pub := &fuzzKey.PublicKey
		got, std := verifyPSS20(pub, d, sig), stdPSS20(pub, d, sig)
		if (got == nil) != (std == nil) {
			t.Fatalf("cached verifier says %v, crypto/rsa %v", got, std)
		}
	})
}

func BenchmarkVerifyPSS20(b *testing.B) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	digest := sha1.Sum([]byte("bench"))
	sig, _ := rsa.SignPSS(rand.Reader, key, crypto.SHA1, digest[:], &rsa.PSSOptions{SaltLength: 20})
	b.Run("crypto-rsa", func(b *testing.B) {
		for b.Loop() {
			if stdPSS20(&key.PublicKey, digest[:], sig) != nil {
				b.Fatal("rejected")
			}
		}
	})
	b.Run("cached-modulus", func(b *testing.B) {
		for b.Loop() {
			if verifyPSS20(&key.PublicKey, digest[:], sig) != nil {
				b.Fatal("rejected")
			}
		}
	})
}
