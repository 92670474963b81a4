package sim

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	d "github.com/roapproxy/roapproxy/decode"
)

// Independent proof: the bytes the simulated peers send are checked with tools that share no
// code with this repository (libxml2's xmllint, OpenSSL).

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

// independentCapture runs every scenario once and returns the exchanges (one run per test
// binary would be cheaper, but each test keeps its own simulation so it can run alone).
func independentCapture(t *testing.T) (*Sim, []Exchange) {
	t.Helper()
	s := startSim(t, Options{})
	var log exchangeLog
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.RunOnce(ctx, log.add); err != nil {
		t.Fatal(err)
	}
	return s, log.list()
}

func writeTemp(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func xmllintC14N(t *testing.T, dir string, body []byte) []byte {
	t.Helper()
	f := writeTemp(t, dir, "msg.xml", body)
	out, err := exec.Command("xmllint", "--exc-c14n", f).Output()
	if err != nil {
		t.Fatalf("xmllint --exc-c14n: %v", err)
	}
	return out
}

// TestIndependentC14N: every XML body sent is byte-identical to its exclusive canonical form as
// libxml2 computes it. RDP messages declare dom, gen and roap on the root (the contract's shape),
// so for them the MAC is checked over libxml2's canonical form of the message without its
// signature element.
func TestIndependentC14N(t *testing.T) {
	needTool(t, "xmllint")
	s, exs := independentCapture(t)
	dir := t.TempDir()
	checked := map[string]int{}
	for _, ex := range exs {
		for _, pair := range []struct {
			ct   string
			body []byte
		}{{ex.RequestType, ex.Request}, {ex.ResponseType, ex.Response}} {
			if len(pair.body) == 0 || pair.body[0] != '<' {
				continue
			}
			root, err := parseMsg(pair.body)
			if err != nil {
				t.Fatal(err)
			}
			c := xmllintC14N(t, dir, pair.body)
			if pair.ct != CTSCE {
				if !bytes.Equal(c, pair.body) {
					t.Errorf("%s <%s>: not canonical as sent.\nsent:    %s\nxmllint: %s", ex.Scenario, root.Local, pair.body, c)
				}
				checked[root.Local]++
				continue
			}
			if !bytes.Equal(c, d.Canonical(root, nil)) {
				t.Errorf("%s <%s>: our canonical form differs from libxml2's", ex.Scenario, root.Local)
			}
			sig := root.Child("signature")
			cut := append(append([]byte(nil), pair.body[:sig.Start]...), pair.body[sig.End:]...)
			covered := xmllintC14N(t, dir, cut)
			mac, _ := d.DecodeBase64(sig.TextContent())
			ok := false
			for _, ri := range s.RIs {
				ok = ok || CheckMAC(ri.cfg.DEA.Alg, ri.cfg.DEA.MK, covered, mac) == nil
			}
			if !ok {
				t.Errorf("%s <%s>: the MAC does not verify over libxml2's canonical form", ex.Scenario, root.Local)
			}
			checked[root.Local]++
		}
	}
	for _, k := range []string{"deviceHello", "riHello", "registrationRequest", "registrationResponse", "roRequest", "roResponse",
		"joinDomainRequest", "joinDomainResponse", "leaveDomainRequest", "leaveDomainResponse", "roapTrigger", "tokenRequest",
		"tokenConsumptionReport", "TokenDeliveryResponse", "rdpProxyLeaveUserDomainRequest", "rdpProxyLeaveUserDomainResponse", "drmTrigger",
		"meteringReportSubmit", "meteringReportResponse"} {
		if checked[k] == 0 {
			t.Errorf("no %s was checked", k)
		}
	}
}

// opensslVerify checks an RSA-PSS (SHA-1, salt 20) signature over data with the public key of
// certDER, using the openssl command.
func opensslVerify(t *testing.T, dir string, certDER, data, sig []byte) error {
	t.Helper()
	cert := writeTemp(t, dir, "cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}))
	pub, err := exec.Command("openssl", "x509", "-pubkey", "-noout", "-in", cert).Output()
	if err != nil {
		t.Fatalf("openssl x509 -pubkey: %v", err)
	}
	pubFile := writeTemp(t, dir, "pub.pem", pub)
	dataFile := writeTemp(t, dir, "data.bin", data)
	sigFile := writeTemp(t, dir, "sig.bin", sig)
	out, err := exec.Command("openssl", "dgst", "-sha1", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:20",
		"-verify", pubFile, "-signature", sigFile, dataFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verified OK") {
		return fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// TestIndependentOpenSSLSignatures verifies with OpenSSL the signatures of a registrationRequest
// (deviceHello || riHello || request), a registrationResponse (request as sent || response), a
// roRequest and a TokenDeliveryResponse, each over the bytes as they went over the wire.
func TestIndependentOpenSSLSignatures(t *testing.T) {
	needTool(t, "openssl")
	s, exs := independentCapture(t)
	dir := t.TempDir()
	p := s.PKI
	certOf := func(id string) []byte {
		for _, i := range append(append([]*Identity(nil), p.RIs...), p.Devices...) {
			if i.ID() == id {
				return i.Cert.Raw
			}
		}
		t.Fatalf("no certificate for %s", id)
		return nil
	}
	var hello, riHello []byte
	done := map[string]bool{}
	for _, ex := range exs {
		if ex.Leg != LegDeviceRI || ex.Method != "POST" {
			continue
		}
		req, err := parseMsg(ex.Request)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := parseMsg(ex.Response)
		if err != nil {
			t.Fatal(err)
		}
		check := func(name string, cert, sigMsg []byte, sigRoot *d.Node, prefix ...[]byte) {
			t.Helper()
			signed, sig, err := signedPart(sigMsg, sigRoot)
			if err != nil {
				t.Fatal(err)
			}
			data := append(bytes.Join(prefix, nil), signed...)
			if err := opensslVerify(t, dir, cert, data, sig); err != nil {
				t.Errorf("%s: openssl does not verify the signature: %v", name, err)
				return
			}
			// And it must fail on anything else: the check is not vacuous.
			if opensslVerify(t, dir, cert, append(data, ' '), sig) == nil {
				t.Errorf("%s: openssl verified altered data", name)
			}
			done[name] = true
		}
		switch req.Local {
		case "deviceHello":
			hello, riHello = ex.Request, ex.Response
		case "registrationRequest":
			if done["registrationResponse"] || status(resp) != StatusSuccess {
				continue
			}
			rh, err := parseMsg(riHello)
			if err != nil {
				t.Fatal(err)
			}
			check("registrationRequest", certOf(registrationSigner(t, req, s)), ex.Request, req, hello, riHello)
			check("registrationResponse", certOf(idAt(rh, "riID")), ex.Response, resp, ex.Request)
		case "roRequest":
			if !done["roRequest"] {
				check("roRequest", certOf(idAt(req, "deviceID")), ex.Request, req)
			}
		case "tokenRequest":
			if !done["TokenDeliveryResponse"] && status(resp) == StatusSuccess {
				check("TokenDeliveryResponse", certOf(idAt(resp, "riID")), ex.Response, resp)
			}
		}
	}
	for _, k := range []string{"registrationRequest", "registrationResponse", "roRequest", "TokenDeliveryResponse"} {
		if !done[k] {
			t.Errorf("no %s signature was checked", k)
		}
	}
}

// registrationSigner returns the device ID a registrationRequest is signed by: the leaf of its chain,
// or the first device registered at RI 1 when the chain was left out.
func registrationSigner(t *testing.T, req *d.Node, s *Sim) string {
	t.Helper()
	der, err := chainAt(req, "certificateChain")
	if err != nil || der == nil {
		return s.Agents[0].ID()
	}
	c, err := parseChainDER(der)
	if err != nil {
		t.Fatal(err)
	}
	return KeyID(c[0])
}

// TestIndependentOpenSSLKEM: OpenSSL's raw RSA decryption of C1 and its X9.63 KDF (which is KDF2
// with SHA-1) recover the KEK that unwraps a real RO's K_MAC || K_REK.
func TestIndependentOpenSSLKEM(t *testing.T) {
	needTool(t, "openssl")
	s, exs := independentCapture(t)
	dir := t.TempDir()
	var cipher []byte
	var dev *Identity
	for _, ex := range exs {
		if len(ex.Response) == 0 || !bytes.Contains(ex.Response, []byte("<roap:roResponse")) {
			continue
		}
		root, err := parseMsg(ex.Response)
		if err != nil {
			t.Fatal(err)
		}
		if cipher, err = d.DecodeBase64(textAt(root, "protectedRO/ro/encKey/CipherData/CipherValue")); err != nil {
			t.Fatal(err)
		}
		for _, i := range s.PKI.Devices {
			if i.ID() == idAt(root, "deviceID") {
				dev = i
			}
		}
		break
	}
	if cipher == nil || dev == nil {
		t.Fatal("no roResponse captured")
	}
	k := dev.Key.Size()
	keyDER, err := x509.MarshalPKCS8PrivateKey(dev.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeTemp(t, dir, "dev.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	c1 := writeTemp(t, dir, "c1.bin", cipher[:k])
	z, err := exec.Command("openssl", "pkeyutl", "-decrypt", "-inkey", keyFile, "-pkeyopt", "rsa_padding_mode:none", "-in", c1).Output()
	if err != nil {
		t.Fatalf("openssl pkeyutl: %v", err)
	}
	if len(z) != k {
		t.Fatalf("Z is %d bytes; want %d", len(z), k)
	}
	kdf, err := exec.Command("openssl", "kdf", "-keylen", "16", "-kdfopt", "digest:SHA1", "-kdfopt", "hexsecret:"+hex.EncodeToString(z), "X963KDF").Output()
	if err != nil {
		t.Fatalf("openssl kdf: %v", err)
	}
	kek, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(string(kdf)), ":", ""))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kek, KDF2(z, nil, 16)) {
		t.Fatalf("OpenSSL X9.63 KDF %X differs from KDF2 %X", kek, KDF2(z, nil, 16))
	}
	keys, err := AESUnwrap(kek, cipher[k:])
	if err != nil || len(keys) != 32 {
		t.Fatalf("the KEK from OpenSSL does not unwrap C2: %v", err)
	}
}
