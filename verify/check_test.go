package verify

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/sim"
)

func goodTDR(t *testing.T, p *sim.PKI) tdr {
	t.Helper()
	der, err := responder(p).Respond(p.RIs[0].Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tdr{ri: p.RIs[0], dev: p.Devices[0].ID(), tdid: "td-1", nonce: nonce("tdr"), qty: 10, ocsp: [][]byte{der}}
}

func TestTDRGood(t *testing.T) {
	p := testPKI(t)
	v := newVerifier(p)
	m := decHint(goodTDR(t, p).build(t, signPSS20), "tokenRequest", false)
	fs := v.Check(m, Context{Time: t0})
	clean(t, fs)
	// The chain is accepted with 1024-bit keys (fielded DRM PKIs), and said so.
	want(t, fs, "CHAIN-WEAK", decode.SevInfo)
	if !strings.Contains(find(fs, "CHAIN-WEAK").Message, "1024-bit") {
		t.Fatalf("CHAIN-WEAK should name the 1024-bit keys: %s", find(fs, "CHAIN-WEAK").Message)
	}
	// A valid chain is learned: the same message without a chain now verifies too.
	s := goodTDR(t, p)
	s.noChain = true
	fs = v.Check(decHint(s.build(t, signPSS20), "tokenRequest", false), Context{Time: t0})
	noErrors(t, fs)
	wantNot(t, fs, "ROAP-SIG-NOKEY")
	wantNot(t, fs, "XBS-9.2.3-SIG")
}

func TestSignatureFaults(t *testing.T) {
	p := testPKI(t)
	cases := []struct {
		name  string
		mut   func(b []byte) []byte
		mode  signMode
		spec  func(s *tdr)
		rule  string
		sev   decode.Severity
		fresh bool // a verifier that has learned nothing
	}{
		{name: "one byte changed after signing", mut: func(b []byte) []byte {
			return bytes.Replace(b, []byte("<tokenQuantity>10<"), []byte("<tokenQuantity>90<"), 1)
		}, rule: "XBS-9.2.3-SIG", sev: decode.SevError},
		{name: "wrong key", spec: func(s *tdr) { s.signer = p.RIs[1] }, rule: "XBS-9.2.3-SIG", sev: decode.SevError},
		{name: "PKCS#1 v1.5", mode: signPKCS1, rule: "ROAP-SIG-PKCS1", sev: decode.SevWarning},
		{name: "salt 32", mode: signPSS32, rule: "ROAP-SIG-SALT", sev: decode.SevInfo},
		{name: "re-serialized after signing", mut: func(b []byte) []byte {
			// Same infoset, different bytes: single quotes around the status attribute.
			return bytes.Replace(b, []byte(`status="Success"`), []byte(`status='Success'`), 1)
		}, rule: "ROAP-SIG-REENCODED", sev: decode.SevWarning},
		{name: "no key known", spec: func(s *tdr) { s.noChain = true }, rule: "ROAP-SIG-NOKEY", sev: decode.SevInfo, fresh: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := goodTDR(t, p)
			if c.spec != nil {
				c.spec(&s)
			}
			b := s.build(t, c.mode)
			if c.mut != nil {
				nb := c.mut(b)
				if bytes.Equal(nb, b) {
					t.Fatal("mutation did not apply")
				}
				b = nb
			}
			v := newVerifier(p)
			fs := v.Check(decHint(b, "tokenRequest", false), Context{Time: t0})
			want(t, fs, c.rule, c.sev)
			if c.sev != decode.SevError {
				noErrors(t, fs)
			}
		})
	}
}

func TestROAPSigOnDeviceRequest(t *testing.T) {
	p := testPKI(t)
	v := newVerifier(p)
	dev := p.Devices[0]
	good := ldr{dev: dev, riID: p.RIs[0].ID(), nonce: nonce("ld"), domain: "DOMAIN-ONE001"}.build(t)
	clean(t, v.Check(dec(good), Context{Time: t0}))
	bad := bytes.Replace(good, []byte("DOMAIN-ONE001"), []byte("DOMAIN-TWO001"), 1)
	want(t, v.Check(dec(bad), Context{Time: t0}), "ROAP-SIG", decode.SevError)
}

func TestChainFaults(t *testing.T) {
	p := testPKI(t)
	other, err := sim.NewPKI(sim.PKIOptions{Bits: 1024, Now: t0, Devices: 1, RIs: 1})
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(o sim.LeafOptions) *sim.Identity {
		t.Helper()
		id, err := p.NewLeaf("ri-variant", o)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	riKP := []asn1.ObjectIdentifier{sim.OIDKPRightsIssuer}
	cases := []struct {
		name string
		ri   *sim.Identity
		at   time.Time
		rule string
		sev  decode.Severity
	}{
		{"SHA-1 signed chain accepted", leaf(sim.LeafOptions{KeyPurposes: riKP, SHA1: true}), t0, "CHAIN-WEAK", decode.SevInfo},
		{"2048-bit key", leaf(sim.LeafOptions{KeyPurposes: riKP, Bits: 2048}), t0, "", ""},
		{"expired", leaf(sim.LeafOptions{KeyPurposes: riKP, NotBefore: t0.AddDate(-2, 0, 0), NotAfter: t0.AddDate(0, 0, -1)}), t0, "CHAIN-EXPIRED", decode.SevError},
		{"not yet valid", leaf(sim.LeafOptions{KeyPurposes: riKP, NotBefore: t0.Add(time.Hour)}), t0, "CHAIN-NOTYETVALID", decode.SevError},
		{"missing key purpose", leaf(sim.LeafOptions{KeyPurposes: []asn1.ObjectIdentifier{sim.OIDKPDRMAgent}}), t0, "CHAIN-KEYPURPOSE", decode.SevError},
		{"untrusted root", other.RIs[0], t0, "CHAIN-UNTRUSTED", decode.SevError},
		{"issued by a non-CA", leaf(sim.LeafOptions{KeyPurposes: riKP, Issuer: p.RIs[1]}), t0, "CHAIN-CA", decode.SevError},
		{"message time after the CA expired", p.RIs[0], t0.AddDate(3, 0, 0), "CHAIN-EXPIRED", decode.SevError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newVerifier(p)
			s := tdr{ri: c.ri, dev: p.Devices[0].ID(), tdid: "td", nonce: nonce("n"), qty: 1}
			fs := v.Check(decHint(s.build(t, signPSS20), "tokenRequest", false), Context{Time: c.at})
			if c.rule == "" {
				noErrors(t, fs)
				return
			}
			want(t, fs, c.rule, c.sev)
			if c.sev == decode.SevInfo {
				noErrors(t, fs)
			}
			// A chain that fails is not learned: a chainless message stays unverifiable.
			if c.sev == decode.SevError {
				s.noChain = true
				want(t, v.Check(decHint(s.build(t, signPSS20), "tokenRequest", false), Context{Time: c.at}), "ROAP-SIG-NOKEY", decode.SevInfo)
			}
		})
	}
	t.Run("riID is not the leaf", func(t *testing.T) {
		v := newVerifier(p)
		s := tdr{ri: p.RIs[0], dev: p.Devices[0].ID(), tdid: "td", nonce: nonce("n"), qty: 1}
		root := dec(s.build(t, signPSS20)).Root
		_ = root
		b := s.build(t, signPSS20)
		b = bytes.Replace(b, []byte(p.RIs[0].ID()), []byte(p.RIs[1].ID()), 1)
		fs := v.Check(decHint(b, "tokenRequest", false), Context{Time: t0})
		want(t, fs, "CHAIN-ID-MISMATCH", decode.SevError)
	})
	t.Run("chain out of order", func(t *testing.T) {
		v := newVerifier(p)
		ri := &sim.Identity{Name: "rev", Key: p.RIs[0].Key, Cert: p.RIs[0].Cert, Chain: []*x509.Certificate{p.CA.Cert, p.RIs[0].Cert}}
		s := tdr{ri: ri, signer: p.RIs[0], dev: p.Devices[0].ID(), tdid: "td", nonce: nonce("n"), qty: 1}
		want(t, v.Check(decHint(s.build(t, signPSS20), "tokenRequest", false), Context{Time: t0}), "CHAIN-ORDER", decode.SevError)
	})
	t.Run("no anchors configured", func(t *testing.T) {
		v := New(nil, Options{Clock: func() time.Time { return t0 }})
		fs := v.Check(decHint(goodTDR(t, p).build(t, signPSS20), "tokenRequest", false), Context{Time: t0})
		want(t, fs, "CHAIN-NOANCHORS", decode.SevInfo)
		noErrors(t, fs)
	})
}

func TestOCSPFaults(t *testing.T) {
	p := testPKI(t)
	ri := p.RIs[0]
	rogue, err := p.NewLeaf("rogue-responder", sim.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		make func(r *sim.OCSPResponder) ([]byte, error)
		rule string
		sev  decode.Severity
	}{
		{"good", func(r *sim.OCSPResponder) ([]byte, error) { return r.Respond(ri.Cert, nil) }, "", ""},
		{"revoked", func(r *sim.OCSPResponder) ([]byte, error) {
			r.Revoke(ri.Cert.SerialNumber, t0.Add(-time.Hour))
			return r.Respond(ri.Cert, nil)
		}, "OCSP-REVOKED", decode.SevError},
		{"stale", func(r *sim.OCSPResponder) ([]byte, error) {
			r.SetFaults(sim.OCSPFaults{Stale: true})
			return r.Respond(ri.Cert, nil)
		}, "OCSP-STALE", decode.SevError},
		{"no nextUpdate and too old", func(r *sim.OCSPResponder) ([]byte, error) {
			r.SetValidity(0)
			r.SetClock(func() time.Time { return t0.Add(-48 * time.Hour) })
			return r.Respond(ri.Cert, nil)
		}, "OCSP-STALE", decode.SevError},
		{"unknown certificate", func(r *sim.OCSPResponder) ([]byte, error) {
			return r.Respond(p.RIs[1].Cert, nil) // about another certificate
		}, "OCSP-CERTID", decode.SevError},
		{"signed by the CA itself", func(r *sim.OCSPResponder) ([]byte, error) {
			r.SetFaults(sim.OCSPFaults{SignWithCA: true})
			return r.Respond(ri.Cert, nil)
		}, "", ""},
		{"unauthorized responder", func(r *sim.OCSPResponder) ([]byte, error) {
			r.SetFaults(sim.OCSPFaults{SignWithKey: rogue.Key})
			return r.Respond(ri.Cert, nil)
		}, "OCSP-RESPONDER", decode.SevError},
		{"responder certificate left out", func(r *sim.OCSPResponder) ([]byte, error) {
			r.SetFaults(sim.OCSPFaults{OmitResponderCert: true})
			return r.Respond(ri.Cert, nil)
		}, "OCSP-RESPONDER", decode.SevError},
		{"signature broken", func(r *sim.OCSPResponder) ([]byte, error) {
			der, err := r.Respond(ri.Cert, nil)
			// Change producedAt (the first time in ResponseData): still well-formed, no longer signed.
			if i := bytes.Index(der, []byte("20250301")); err == nil && i >= 0 {
				der[i+7] = '2'
			} else if err == nil {
				err = errors.New("producedAt not found")
			}
			return der, err
		}, "OCSP-SIG", decode.SevError},
		{"not a successful response", func(r *sim.OCSPResponder) ([]byte, error) {
			return []byte{0x30, 0x03, 0x0a, 0x01, 0x03}, nil // tryLater
		}, "OCSP-MALFORMED", decode.SevError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			der, err := c.make(responder(p))
			if err != nil {
				t.Fatal(err)
			}
			s := tdr{ri: ri, dev: p.Devices[0].ID(), tdid: "td", nonce: nonce("n"), qty: 1, ocsp: [][]byte{der}}
			fs := newVerifier(p).Check(decHint(s.build(t, signPSS20), "tokenRequest", false), Context{Time: t0})
			if c.rule == "" {
				noErrors(t, fs)
				wantNot(t, fs, "XBS-9.2.3-OCSP-GOOD")
				return
			}
			want(t, fs, c.rule, c.sev)
			want(t, fs, "XBS-9.2.3-OCSP-GOOD", decode.SevError)
			wantNot(t, fs, "XBS-9.2.3-SIG")
		})
	}
}

func TestRevokedReasonAndTime(t *testing.T) {
	p := testPKI(t)
	r := responder(p)
	r.RevokeWithReason(p.RIs[0].Cert.SerialNumber, t0.Add(-2*time.Hour), 1)
	der, err := r.Respond(p.RIs[0].Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := tdr{ri: p.RIs[0], dev: p.Devices[0].ID(), tdid: "td", nonce: nonce("n"), qty: 1, ocsp: [][]byte{der}}
	f := find(newVerifier(p).Check(decHint(s.build(t, signPSS20), "tokenRequest", false), Context{}), "OCSP-REVOKED")
	if f == nil || !strings.Contains(f.Message, "keyCompromise") || !strings.Contains(f.Message, t0.Add(-2*time.Hour).Format(time.RFC3339)) {
		t.Fatalf("OCSP-REVOKED should give reason and time: %+v", f)
	}
}

func TestSCEMAC(t *testing.T) {
	p := testPKI(t)
	riID, deaID := p.RIs[0].ID(), p.DEA.ID()
	mk := bytes.Repeat([]byte{7}, 20)
	embedded := ldr{dev: p.Devices[0], riID: riID, nonce: nonce("d"), domain: sim.UserDomain}.build(t)
	req := rdpRequest(riID, deaID, nonce("g"), embedded, nil, mk)
	trg := drmTrigger(deaID, nonce("t"), sim.UserDomain, []string{p.Devices[0].ID()}, mk)

	v := newVerifier(p)
	want(t, v.Check(dec(req), Context{Time: t0}), "GEN-MAC-NOKEY", decode.SevInfo)
	noErrors(t, v.Check(dec(req), Context{Time: t0}))

	keys := riID + " " + deaID + " " + strings.Repeat("07", 20) + "\n"
	if err := v.Trust().ParseKeys(strings.NewReader(keys), "keys"); err != nil {
		t.Fatal(err)
	}
	fs := v.Check(dec(req), Context{Time: t0})
	clean(t, fs)
	clean(t, v.Check(dec(trg), Context{Time: t0})) // the trigger names only the DEA: the pair key is found by its DEA side

	tampered := bytes.Replace(req, []byte(sim.UserDomain[:4]), []byte("XXXX"), 1)
	if bytes.Equal(tampered, req) {
		tampered = bytes.Replace(req, []byte("<nonce>"), []byte("<nonce>AA"), 1)
	}
	want(t, v.Check(dec(tampered), Context{Time: t0}), "GEN-MAC-SCOPE", decode.SevError)
	badTrg := bytes.Replace(trg, []byte(`id="trg-1"`), []byte(`id="trg-2"`), 1)
	want(t, v.Check(dec(badTrg), Context{Time: t0}), "DOM-7.6.1-MAC", decode.SevError)

	// HMAC-SHA256 under a key configured as HMAC-SHA1: verified, with a warning.
	root := sceRoot("rdpProxyLeaveUserDomainResponse", decode.A("status", "InvalidDomain"), ident("reqID", riID), ident("resID", deaID), decode.El("nonce", nonce("g")))
	sha256Resp := macRoot(root, mk, MACHMACSHA256)
	want(t, v.Check(dec(sha256Resp), Context{Time: t0}), "GEN-MAC-ALG", decode.SevWarning)

	// The bytes as sent may carry declarations canonical form drops (the vectors declare dom,
	// gen and roap on the root): the MAC is over the canonical form, so they do not matter.
	withDecl := bytes.Replace(req, []byte(`<dom:rdpProxyLeaveUserDomainRequest `), []byte(`<dom:rdpProxyLeaveUserDomainRequest xmlns:xsi="`+decode.NSXSI+`" `), 1)
	clean(t, v.Check(dec(withDecl), Context{Time: t0}))
}

func TestSeed000DeviceChain(t *testing.T) {
	p := testPKI(t)
	riID, deaID := p.RIs[0].ID(), p.DEA.ID()
	mk := []byte("0123456789abcdef0123")
	v := newVerifier(p)
	v.Trust().AddMACKey(MACKey{ID: deaID, Key: mk})

	// A plain DRM Agent: nothing to say.
	good := ldr{dev: p.Devices[0], riID: riID, nonce: nonce("d"), domain: sim.UserDomain}.build(t)
	m := dec(rdpRequest(riID, deaID, nonce("g"), good, nil, mk))
	rep := v.check(m, Context{Time: t0})
	noErrors(t, rep.findings)
	if rep.devChain != pass || rep.devKP != pass || rep.ldrSig != pass {
		t.Fatalf("verdicts for a good proxied leave: %s", rep)
	}

	// An SCE DRM Agent's certificate: DOM-7.5.2-DEVCHAIN-KP (from decode or verify, once).
	sce := ldr{dev: p.SCEDevice, riID: riID, nonce: nonce("d2"), domain: sim.UserDomain}.build(t)
	m = dec(rdpRequest(riID, deaID, nonce("g2"), sce, nil, mk))
	rep = v.check(m, Context{Time: t0})
	all := append(append([]decode.Finding(nil), m.Findings...), rep.findings...)
	want(t, all, "DOM-7.5.2-DEVCHAIN-KP", decode.SevError)
	n := 0
	for _, f := range all {
		if f.Rule == "DOM-7.5.2-DEVCHAIN-KP" {
			n++
		}
	}
	if n != 2 && n != 1 { // decode reports the missing .2 and the extra .4 separately at most
		t.Fatalf("DEVCHAIN-KP reported %d times:%s", n, dump(all))
	}
	if rep.devKP != fail {
		t.Fatalf("key purpose verdict: %s", rep)
	}
	// Outside the proxied leave the same certificate is a fine DRM Agent.
	clean(t, v.Check(dec(sce), Context{Time: t0}))

	// The embedded request's signature is judged as DOM-7.5.2-LDR-SIG, with the device chain
	// carried next to it (deviceCertificateChain) when the request has none.
	noChain := ldr{dev: p.Devices[0], riID: riID, nonce: nonce("d3"), domain: sim.UserDomain, noChain: true}.build(t)
	broken := bytes.Replace(noChain, []byte(sim.UserDomain), []byte("ACMEUSERDOM42002"), 1)
	m = dec(rdpRequest(riID, deaID, nonce("g3"), broken, p.Devices[0], mk))
	rep = v.check(m, Context{Time: t0})
	want(t, rep.findings, "DOM-7.5.2-LDR-SIG", decode.SevError)
	if f := find(rep.findings, "DOM-7.5.2-LDR-SIG"); !strings.Contains(f.Path, "/reqInfo/") {
		t.Fatalf("LDR-SIG path should point into the embedded request: %s", f.Path)
	}
	if rep.ldrSig != fail || rep.devChain != pass {
		t.Fatalf("verdicts: %s", rep)
	}

	// An expired device certificate: the chain fails, DOM-7.5.2-CHAIN-VALID says what the DEA must do.
	old, err := p.NewLeaf("old-device", sim.LeafOptions{KeyPurposes: []asn1.ObjectIdentifier{sim.OIDKPDRMAgent}, NotBefore: t0.AddDate(-3, 0, 0), NotAfter: t0.AddDate(0, -1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	exp := ldr{dev: old, riID: riID, nonce: nonce("d4"), domain: sim.UserDomain}.build(t)
	rep = v.check(dec(rdpRequest(riID, deaID, nonce("g4"), exp, nil, mk)), Context{Time: t0})
	want(t, rep.findings, "CHAIN-EXPIRED", decode.SevError)
	want(t, rep.findings, "DOM-7.5.2-CHAIN-VALID", decode.SevError)
	if rep.devChain != fail {
		t.Fatalf("verdicts: %s", rep)
	}
}

func TestTriggerDigest(t *testing.T) {
	p := testPKI(t)
	for _, variant := range []string{"leaveDomain", "roAcquisition"} {
		t.Run(variant, func(t *testing.T) {
			last := decode.El("domainID", "DOM001")
			if variant == "roAcquisition" {
				last = decode.El("roID", "DOM001-ro")
			}
			body := decode.El(variant, decode.A("id", "t1"), ident("riID", p.RIs[0].ID()), decode.El("nonce", nonce("tn")),
				decode.El("roapURL", "https://ri.example/roap"), last)
			digest := sha1Canon(body)
			sig := decode.El("signature",
				decode.El("ds:SignedInfo", decode.NS("ds", decode.NSDS),
					decode.El("ds:CanonicalizationMethod", decode.A("Algorithm", decode.AlgC14N)),
					decode.El("ds:SignatureMethod", decode.A("Algorithm", decode.AlgHMAC1)),
					decode.El("ds:Reference", decode.A("URI", "#t1"),
						decode.El("ds:DigestMethod", decode.A("Algorithm", decode.AlgSHA1)),
						decode.El("ds:DigestValue", digest))),
				decode.El("ds:SignatureValue", decode.NS("ds", decode.NSDS), b64s(bytes.Repeat([]byte{1}, 20))))
			trig := decode.El("roap:roapTrigger", decode.NS("roap", decode.NSROAP), decode.A("version", "1.0"), body, sig,
				decode.El("encKey", decode.A("Id", "k")))
			raw := trig.Bytes()
			v := newVerifier(p)
			m := dec(raw)
			fs := v.Check(m, Context{Time: t0})
			wantNot(t, fs, "ROAP-TRIG-DIGEST")
			// The MAC is unverifiable, said once: by decode for leaveDomain triggers, else here.
			if m.Has("ROAP-LD-TRIGGER-SIG") == (find(fs, "ROAP-TRIG-MAC") != nil) {
				t.Fatalf("the unverifiable MAC should be reported exactly once:%s%s", dump(m.Findings), dump(fs))
			}
			if variant == "roAcquisition" {
				want(t, fs, "ROAP-TRIG-MAC", decode.SevInfo)
			}

			altered := bytes.Replace(raw, []byte("DOM001"), []byte("DOM002"), 1)
			want(t, v.Check(dec(altered), Context{Time: t0}), "ROAP-TRIG-DIGEST", decode.SevError)
		})
	}
}

func sha1Canon(n *decode.Node) string {
	c := n.Clone()
	h := sha1Sum(c.Bytes())
	return b64s(h)
}

func TestOCSPAboutTheCAWithoutAnchors(t *testing.T) {
	p := testPKI(t)
	ri := p.RIs[0]
	r := responder(p)
	leafDER, err := r.Respond(ri.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	caDER, err := r.Respond(p.CA.Cert, nil) // about the issuing CA, whose issuer is the root
	if err != nil {
		t.Fatal(err)
	}
	s := tdr{ri: ri, dev: p.Devices[0].ID(), tdid: "td", nonce: nonce("n"), qty: 1, ocsp: [][]byte{leafDER, caDER}}
	msg := s.build(t, signPSS20)
	// Anchored, the root completes the path and both responses are judged.
	fs := newVerifier(p).Check(decHint(msg, "tokenRequest", false), Context{Time: t0})
	noErrors(t, fs)
	wantNot(t, fs, "OCSP-CERTID")
	// Without anchors the root is unknown: the CA's response cannot be matched to an issuer,
	// which is unknown rather than wrong.
	fs = New(NewTrust(), Options{Clock: func() time.Time { return t0 }}).Check(decHint(msg, "tokenRequest", false), Context{Time: t0})
	want(t, fs, "OCSP-CERTID", decode.SevInfo)
	if !strings.Contains(find(fs, "OCSP-CERTID").Message, "Issuing CA") {
		t.Errorf("the note should name the CA: %s", find(fs, "OCSP-CERTID").Message)
	}
}
