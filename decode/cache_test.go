package decode

import (
	"bytes"
	"crypto/x509"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fxCacheBody is a TokenDeliveryResponse carrying the given certificate and OCSP texts as sent.
func fxCacheBody(p *fxPKI, certs []string, ocsp string) []byte {
	chain := El("certificateChain")
	for _, c := range certs {
		chain.Children = append(chain.Children, El("certificate", c))
	}
	root := El("roap:TokenDeliveryResponse", NS("roap", NSROAP), A("status", "Success"),
		fxKeyID("deviceID", p.devDER), fxKeyID("riID", p.riDER),
		El("tokenDeliveryID", "tdid-0001"), El("nonce", "2AK0eNzeUFXfOhHE1l9Z8w=="), El("tokenQuantity", "10"),
		chain, El("ocspResponse", ocsp), El("signature", "c2ln"))
	return root.Bytes()
}

// flip changes the base64 character at i to another base64 character.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

// sameDecode fails unless a (from a caching decoder) and b (from the package-level, cache-less
// Decode) say the same: findings, chains (DER and parsed certificates) and OCSP responses.
func sameDecode(t *testing.T, what string, a, b *Message) {
	t.Helper()
	if !reflect.DeepEqual(a.Findings, b.Findings) {
		t.Fatalf("%s: findings differ:\ncached   %v\nuncached %v", what, a.Findings, b.Findings)
	}
	if len(a.Chains) != len(b.Chains) || len(a.OCSP) != len(b.OCSP) {
		t.Fatalf("%s: %d chains and %d OCSP with the caches, %d and %d without", what, len(a.Chains), len(a.OCSP), len(b.Chains), len(b.OCSP))
	}
	for i := range a.Chains {
		ca, cb := a.Chains[i], b.Chains[i]
		if ca.Path != cb.Path || !reflect.DeepEqual(ca.DER, cb.DER) || len(ca.Certs) != len(cb.Certs) {
			t.Fatalf("%s: chain %d differs", what, i)
		}
		for k := range ca.Certs {
			if !ca.Certs[k].Equal(cb.Certs[k]) || !bytes.Equal(ca.Certs[k].Raw, ca.DER[k]) {
				t.Fatalf("%s: chain %d certificate %d differs", what, i, k)
			}
		}
	}
	for i := range a.OCSP {
		if a.OCSP[i].Path != b.OCSP[i].Path || !bytes.Equal(a.OCSP[i].DER, b.OCSP[i].DER) {
			t.Fatalf("%s: OCSP response %d differs", what, i)
		}
	}
}

func TestDecoderCachesGiveWhatDecodingGives(t *testing.T) {
	p := fxGetPKI(t)
	caCert, err := x509.ParseCertificate(p.caDER)
	if err != nil {
		t.Fatal(err)
	}
	ocsp2, err := fxOCSPGood(caCert, p.caKey, big.NewInt(2), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	dev, ri, ca, o1, o2 := fxB64(p.devDER), fxB64(p.riDER), fxB64(p.caDER), fxB64(p.ocspDER), fxB64(ocsp2)
	// One byte of the OCSP signature changed: still a DER OCSPResponse, but other bytes.
	o1sig := flip(o1, len(o1)-8)
	if d, err := DecodeBase64(o1sig); err != nil || bytes.Equal(d, p.ocspDER) {
		t.Fatalf("the changed OCSP text does not decode to other bytes (%v)", err)
	}
	// One byte of the certificate's signature changed: it still parses, as another certificate.
	devSig := flip(dev, len(dev)-8)
	if c, err := x509.ParseCertificate(mustB64(t, devSig)); err != nil || bytes.Equal(c.Raw, p.devDER) {
		t.Fatalf("the changed certificate text does not parse as another certificate (%v)", err)
	}
	wrapped := func(s string) string { // the same DER, line-wrapped as some peers send it
		var b strings.Builder
		for len(s) > 64 {
			b.WriteString(s[:64] + "\n")
			s = s[64:]
		}
		return b.String() + s
	}
	cases := []struct {
		name  string
		certs []string
		ocsp  string
	}{
		{"device chain", []string{dev, ca}, o1},
		{"RI chain, other OCSP", []string{ri, ca}, o2},
		{"device chain again", []string{dev, ca}, o1},
		{"changed certificate byte", []string{devSig, ca}, o1},
		{"changed OCSP byte", []string{dev, ca}, o1sig},
		{"certificate not base64", []string{dev[:10] + "!" + dev[11:], ca}, o1},
		{"OCSP not base64", []string{dev, ca}, "!" + o1[1:]},
		{"OCSP not DER", []string{dev, ca}, fxB64([]byte("not an OCSP response"))},
		{"empty OCSP", []string{dev, ca}, ""},
		{"certificate not DER", []string{fxB64([]byte("junk")), ca}, o1},
		{"line-wrapped texts", []string{wrapped(dev), wrapped(ca)}, wrapped(o1)},
		{"first case once more", []string{dev, ca}, o1},
	}
	dec := NewDecoder(DefaultLimits)
	h := Hint{ContentType: MIMEPDU, Direction: DirResponse, Answers: "tokenRequest"}
	for round := 0; round < 2; round++ { // the second round is served from the caches
		for _, c := range cases {
			body := fxCacheBody(p, c.certs, c.ocsp)
			sameDecode(t, c.name, dec.Decode(body, h), Decode(body, h))
		}
	}
	if n := len(dec.certs.m); n != 6 { // dev, ca, ri, devSig and the two wrapped texts
		t.Errorf("the certificate cache holds %d entries; the distinct parseable texts are 6", n)
	}
	if n := len(dec.ocsp.m); n != 4 { // o1, o2, o1sig, wrapped o1
		t.Errorf("the OCSP cache holds %d entries; the distinct valid texts are 4", n)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := DecodeBase64(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTextCacheIsBounded(t *testing.T) {
	c := newTextCache[int](4)
	keys := []string{"a", "b", "c", "d", "e", "f", "g"}
	for i, k := range keys {
		c.put(k, i)
		c.put(k, 100+i) // a repeat neither grows the cache nor replaces the value
	}
	if len(c.m) != 4 || len(c.order) != 4 {
		t.Fatalf("cache holds %d entries (%d in order); the bound is 4", len(c.m), len(c.order))
	}
	for i, k := range keys {
		v, ok := c.get(k)
		if want := i >= 3; ok != want || (ok && v != i) {
			t.Errorf("get(%q) = %d, %v; want present=%v with %d", k, v, ok, want, i)
		}
	}
	big := strings.Repeat("A", maxCachedText+4)
	c.put(big, 1)
	if _, ok := c.get(big); ok {
		t.Error("a text over the size cap was cached")
	}
	var nilCache *textCache[int]
	nilCache.put("a", 1)
	if _, ok := nilCache.get("a"); ok {
		t.Error("a nil cache returned a value")
	}
}

// The proxy decodes on several goroutines with one Decoder; run with -race.
func TestDecoderCachesConcurrent(t *testing.T) {
	p := fxGetPKI(t)
	dev, ri, ca, o1 := fxB64(p.devDER), fxB64(p.riDER), fxB64(p.caDER), fxB64(p.ocspDER)
	bodies := [][]byte{fxCacheBody(p, []string{dev, ca}, o1), fxCacheBody(p, []string{ri, ca}, o1), fxCacheBody(p, []string{ri}, "!")}
	h := Hint{ContentType: MIMEPDU, Direction: DirResponse, Answers: "tokenRequest"}
	want := make([]*Message, len(bodies))
	for i, b := range bodies {
		want[i] = Decode(b, h)
	}
	dec := NewDecoder(DefaultLimits)
	dec.certs.max, dec.ocsp.max = 2, 1 // force evictions while others read
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				k := (g + i) % len(bodies)
				m := dec.Decode(bodies[k], h)
				if !reflect.DeepEqual(m.Findings, want[k].Findings) || len(m.OCSP) != len(want[k].OCSP) ||
					!reflect.DeepEqual(m.Chains[0].DER, want[k].Chains[0].DER) {
					errs <- "a concurrent decode differs from the uncached one"
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
