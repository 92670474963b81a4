package sim

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
	"time"

	d "github.com/roapproxy/roapproxy/decode"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCryptoAESWrapRFC3394 uses the test vectors of RFC 3394 §4.
func TestCryptoAESWrapRFC3394(t *testing.T) {
	cases := []struct{ kek, data, want string }{
		{"000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF",
			"1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"}, // §4.1
		{"000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF0001020304050607",
			"031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2"}, // §4.4
		{"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
			"00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
			"28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"}, // §4.6
	}
	for _, c := range cases {
		kek, data, want := unhex(t, c.kek), unhex(t, c.data), unhex(t, c.want)
		got, err := AESWrap(kek, data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("wrap(%s): %X, want %X", c.kek, got, want)
		}
		back, err := AESUnwrap(kek, got)
		if err != nil || !bytes.Equal(back, data) {
			t.Errorf("unwrap(%s): %X, %v", c.kek, back, err)
		}
		bad := append([]byte(nil), got...)
		bad[len(bad)-1] ^= 1
		if _, err := AESUnwrap(kek, bad); err == nil {
			t.Errorf("unwrap of damaged data succeeded")
		}
	}
	if _, err := AESWrap(make([]byte, 16), make([]byte, 12)); err == nil {
		t.Error("wrapping 12 bytes should fail")
	}
	if _, err := AESUnwrap(make([]byte, 16), make([]byte, 16)); err == nil {
		t.Error("unwrapping 16 bytes should fail")
	}
}

// TestCryptoKDF2 checks KDF2 against its definition, block by block.
func TestCryptoKDF2(t *testing.T) {
	z := []byte("shared secret Z")
	b1 := sha1.Sum(append(append([]byte(nil), z...), 0, 0, 0, 1))
	b2 := sha1.Sum(append(append([]byte(nil), z...), 0, 0, 0, 2))
	if got := KDF2(z, nil, 16); !bytes.Equal(got, b1[:16]) {
		t.Errorf("16 bytes: %X, want %X", got, b1[:16])
	}
	want := append(b1[:], b2[:10]...)
	if got := KDF2(z, nil, 30); !bytes.Equal(got, want) {
		t.Errorf("30 bytes: %X, want %X", got, want)
	}
	o := sha1.Sum(append(append(append([]byte(nil), z...), 0, 0, 0, 1), "other"...))
	if got := KDF2(z, []byte("other"), 20); !bytes.Equal(got, o[:]) {
		t.Errorf("with otherInfo: %X", got)
	}
}

// TestCryptoKEM round-trips RSA-KEM-KWS and checks its layout piece by piece: C1 is raw RSA of a
// modulus-length Z, the KEK is the first 16 bytes of SHA-1(Z || 00000001), C2 the RFC 3394 wrap.
func TestCryptoKEM(t *testing.T) {
	p := simPeersPKI(t)
	key := p.Devices[0].Key
	keys := append(bytes.Repeat([]byte{0x11}, 16), bytes.Repeat([]byte{0x22}, 16)...)
	c, err := KEMEncrypt(nil, &key.PublicKey, keys)
	if err != nil {
		t.Fatal(err)
	}
	k := key.Size()
	if len(c) != k+40 {
		t.Fatalf("ciphertext is %d bytes; want modulus (%d) + 40", len(c), k)
	}
	got, err := KEMDecrypt(key, c)
	if err != nil || !bytes.Equal(got, keys) {
		t.Fatalf("round trip: %X, %v", got, err)
	}
	z := new(big.Int).Exp(new(big.Int).SetBytes(c[:k]), key.D, key.N).FillBytes(make([]byte, k))
	kek := sha1.Sum(append(z, 0, 0, 0, 1))
	inner, err := AESUnwrap(kek[:16], c[k:])
	if err != nil || !bytes.Equal(inner, keys) {
		t.Errorf("by hand: %X, %v", inner, err)
	}
	if _, err := KEMDecrypt(p.Devices[1].Key, c); err == nil {
		t.Error("another device's key unwrapped the keys")
	}
	if _, err := KEMDecrypt(key, c[:k]); err == nil {
		t.Error("a ciphertext without C2 was accepted")
	}
}

// TestCryptoPSS signs over several parts and verifies over their concatenation.
func TestCryptoPSS(t *testing.T) {
	key := simPeersPKI(t).Devices[0].Key
	sig, err := SignPSS(key, []byte("device"), []byte("Hello"), []byte("request"))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyPSS(&key.PublicKey, sig, []byte("deviceHello"), []byte("request")); err != nil {
		t.Errorf("concatenation should verify whatever the split: %v", err)
	}
	if err := VerifyPSS(&key.PublicKey, sig, []byte("deviceHello request")); err == nil {
		t.Error("altered data verified")
	}
	if len(sig) != key.Size() {
		t.Errorf("signature of %d bytes", len(sig))
	}
}

// TestCryptoMAC uses RFC 2202 (HMAC-SHA1) and RFC 4231 (HMAC-SHA256) test case 2.
func TestCryptoMAC(t *testing.T) {
	data := []byte("what do ya want for nothing?")
	key := []byte("Jefe")
	m1, err := MAC(HMACSHA1, key, data)
	if err != nil || hex.EncodeToString(m1) != "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79" {
		t.Errorf("HMAC-SHA1: %x %v", m1, err)
	}
	m2, err := MAC(HMACSHA256, key, data)
	if err != nil || hex.EncodeToString(m2) != "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" {
		t.Errorf("HMAC-SHA256: %x %v", m2, err)
	}
	if err := CheckMAC(HMACSHA1, key, data, m1); err != nil {
		t.Error(err)
	}
	if err := CheckMAC(HMACSHA1, key, append(data, '!'), m1); err == nil {
		t.Error("MAC over other data verified")
	}
	if _, err := MAC("urn:nothing", key, data); err == nil {
		t.Error("unknown algorithm accepted")
	}
}

// TestCryptoProtectedRO checks the RO integrity layout of roap-core §7.6 on a built RO: the
// DigestValue is SHA-1 of the roap:ro subtree in its own canonical form (which declares
// xmlns:roap), and the agent's unwrapping recovers the CEK.
func TestCryptoProtectedRO(t *testing.T) {
	p := simPeersPKI(t)
	dev := p.Devices[0]
	cek := bytes.Repeat([]byte{0x5A}, 16)
	pr, err := ProtectedRO(ROParams{ID: "RO-1", RIID: p.RIs[0].ID(), ContentID: "cid:x", CEK: cek, DeviceID: dev.ID(), DeviceKey: &dev.Key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	wire := roapRoot("roResponse", pr).Bytes()
	root, err := parseMsg(wire)
	if err != nil {
		t.Fatal(err)
	}
	ro := root.Find("protectedRO/ro")
	sub := d.Canonical(ro, nil)
	if !bytes.HasPrefix(sub, []byte(`<roap:ro xmlns:roap="urn:oma:bac:dldrm:roap-1.0" id="RO-1"`)) {
		t.Errorf("subtree canonical form: %.80s", sub)
	}
	if bytes.Contains(wire[ro.Start:ro.End], []byte("xmlns:roap")) {
		t.Error("inside the message the RO should not redeclare roap (the root declares it)")
	}
	dig := sha1.Sum(sub)
	if textAt(root, "protectedRO/mac/SignedInfo/Reference/DigestValue") != b64(dig[:]) {
		t.Error("DigestValue is not SHA-1 of the canonical roap:ro")
	}
	a := &Agent{cfg: AgentConfig{Identity: dev}}
	got, err := a.unwrapRO(root.Child("protectedRO"), p.RIs[0].ID())
	if err != nil || !bytes.Equal(got.CEK, cek) || got.ContentID != "cid:x" {
		t.Fatalf("unwrap: %+v %v", got, err)
	}
	// Tampering with the rights breaks the digest.
	tampered := bytes.ReplaceAll(wire, []byte("o-dd:play"), []byte("o-dd:print"))
	troot, err := parseMsg(tampered)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.unwrapRO(troot.Child("protectedRO"), p.RIs[0].ID()); err == nil || !strings.Contains(err.Error(), "DigestValue") {
		t.Errorf("tampered RO: %v", err)
	}
}

// TestCryptoSignLayout: Sign puts the signature last and signs the canonical bytes without it.
func TestCryptoSignLayout(t *testing.T) {
	p := simPeersPKI(t)
	dev := p.Devices[0]
	wire, err := Sign(LeaveDomainRequest{DeviceID: dev.ID(), RIID: p.RIs[0].ID(), Nonce: "AAAAAAAAAAAAAAAAAAAA", Time: time.Unix(0, 0),
		DomainID: "D001"}.Build(), dev.Key, false)
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseMsg(wire)
	if err != nil {
		t.Fatal(err)
	}
	els := root.Elements()
	if els[len(els)-1].Local != "signature" {
		t.Error("signature is not the last child")
	}
	signed, sig, err := signedPart(wire, root)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signed, root.BytesWithout("signature")) {
		t.Error("the bytes without the signature element are not canonical")
	}
	if err := VerifyPSS(&dev.Key.PublicKey, sig, signed); err != nil {
		t.Error(err)
	}
	bad, err := Sign(LeaveDomainRequest{DeviceID: dev.ID(), RIID: p.RIs[0].ID(), Nonce: "AAAAAAAAAAAAAAAAAAAA", Time: time.Unix(0, 0),
		DomainID: "D001"}.Build(), dev.Key, true)
	if err != nil {
		t.Fatal(err)
	}
	broot, _ := parseMsg(bad)
	bsigned, bsig, _ := signedPart(bad, broot)
	if VerifyPSS(&dev.Key.PublicKey, bsig, bsigned) == nil {
		t.Error("a corrupted signature verified")
	}
}

// TestCryptoMeteringReport: the RI opens what the device encrypted to it; another key, or a
// report altered after the MAC, gives the metering statuses of roap-core §4.
func TestCryptoMeteringReport(t *testing.T) {
	p := simPeersPKI(t)
	ri, dev := p.RIs[0], p.Devices[0]
	n, err := MeteringReportSubmit{DeviceID: dev.ID(), RIID: ri.ID(), Nonce: newNonce(), Time: time.Now(),
		Report: []byte("<meteringInfo>plays</meteringInfo>"), RIKey: &ri.Key.PublicKey}.Build()
	if err != nil {
		t.Fatal(err)
	}
	wire, err := Sign(n, dev.Key, false)
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseMsg(wire)
	if err != nil {
		t.Fatal(err)
	}
	plain, st, err := openMeteringReport(root.Child("meteringReport"), ri.Key)
	if err != nil || string(plain) != "<meteringInfo>plays</meteringInfo>" {
		t.Fatalf("open: %q %s %v", plain, st, err)
	}
	if _, st, _ := openMeteringReport(root.Child("meteringReport"), p.RIs[1].Key); st != "UnableToDecryptMeteringReport" {
		t.Errorf("another RI's key: status %q", st)
	}
	cv := root.Find("meteringReport/encryptedMeteringReport/EncryptedData/CipherData/CipherValue")
	tampered := bytes.Replace(wire, []byte(cv.TextContent()), []byte(flipB64(cv.TextContent())), 1)
	troot, err := parseMsg(tampered)
	if err != nil {
		t.Fatal(err)
	}
	if _, st, _ := openMeteringReport(troot.Child("meteringReport"), ri.Key); st != "UnableToValidateMeteringReportMAC" {
		t.Errorf("tampered report: status %q", st)
	}
}

// Optional fields left empty are left out, never a nil child in the tree.
func TestHellosWithoutOptionalFields(t *testing.T) {
	id := "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
	b := RIHello{Status: StatusSuccess, SessionID: "s1", Version: "1.0", RIID: id, RINonce: "AAAAAAAAAAAAAAAAAAAAAA=="}.Bytes()
	if m := d.Decode(b, d.Hint{}); m.Kind != "riHello" || m.Worst() == d.SevError || bytes.Contains(b, []byte("serverInfo")) {
		t.Fatalf("riHello without serverInfo: %s %+v", b, m.Findings)
	}
}
