package verify

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/sim"
)

// t0 is the time every test message is "seen" unless a test says otherwise; the test PKI is
// valid from t0-1h to t0+2y.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

var (
	pkiOnce sync.Once
	pkiVal  *sim.PKI
	pkiErr  error
)

// testPKI is a shared 1024-bit test PKI (fast to build; 1024-bit keys are what fielded DRM PKIs
// use and need no GODEBUG).
func testPKI(t testing.TB) *sim.PKI {
	t.Helper()
	pkiOnce.Do(func() { pkiVal, pkiErr = sim.NewPKI(sim.PKIOptions{Bits: 1024, Now: t0}) })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pkiVal
}

func newVerifier(p *sim.PKI) *Verifier {
	tr := NewTrust()
	tr.AddAnchors(p.Roots()...)
	return New(tr, Options{Clock: func() time.Time { return t0 }})
}

func responder(p *sim.PKI) *sim.OCSPResponder {
	r := sim.NewOCSPResponder(p)
	r.SetClock(func() time.Time { return t0.Add(-time.Minute) })
	return r
}

// ---- building messages with decode.El ----

func b64s(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func ident(wrapper, id string) *decode.Node {
	return decode.El(wrapper, decode.El("keyIdentifier", decode.NS("xsi", decode.NSXSI), decode.A("algorithm", decode.AlgSHA1),
		decode.A("xsi:type", "roap:X509SPKIHash"), decode.El("hash", id)))
}

func chainEl(name string, id *sim.Identity) *decode.Node {
	if id == nil {
		return nil
	}
	n := decode.El(name)
	for _, c := range id.Chain {
		n.Children = append(n.Children, decode.El("certificate", b64s(c.Raw)))
	}
	return n
}

func roapRoot(kind string, items ...any) *decode.Node {
	return decode.El("roap:"+kind, append([]any{decode.NS("roap", decode.NSROAP)}, items...)...)
}

func ext(typ string, content ...any) *decode.Node {
	return decode.El("extension", append([]any{decode.NS("xsi", decode.NSXSI), decode.A("xsi:type", "roap:"+typ)}, content...)...)
}

type signMode int

const (
	signPSS20 signMode = iota
	signPSS32
	signPKCS1
)

// sign appends <signature> to root, signs prefix || canonical(root without signature) and
// returns the canonical wire bytes.
func sign(t testing.TB, root *decode.Node, key *rsa.PrivateKey, mode signMode, prefix ...[]byte) []byte {
	t.Helper()
	root.Remove("signature")
	sig := decode.El("signature")
	sig.Parent = root
	root.Children = append(root.Children, sig)
	h := sha1.New()
	for _, p := range prefix {
		h.Write(p)
	}
	h.Write(root.BytesWithout("signature"))
	d := h.Sum(nil)
	var s []byte
	var err error
	switch mode {
	case signPSS20:
		s, err = rsa.SignPSS(rand.Reader, key, crypto.SHA1, d, &rsa.PSSOptions{SaltLength: 20})
	case signPSS32:
		s, err = rsa.SignPSS(rand.Reader, key, crypto.SHA1, d, &rsa.PSSOptions{SaltLength: 32})
	case signPKCS1:
		s, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA1, d)
	}
	if err != nil {
		t.Fatal(err)
	}
	sig.SetText(b64s(s))
	return root.Bytes()
}

func nonce(tag string) string {
	h := sha1.Sum([]byte(tag))
	return b64s(h[:16])
}

// tdr is a TokenDeliveryResponse to build.
type tdr struct {
	ri      *sim.Identity // riID; its chain when chain is set
	signer  *sim.Identity // signing key (default ri)
	dev     string
	tdid    string
	nonce   string
	qty     int
	noChain bool
	ocsp    [][]byte
	status  string
}

func (s tdr) build(t testing.TB, mode signMode) []byte {
	t.Helper()
	if s.status != "" && s.status != "Success" {
		return roapRoot("TokenDeliveryResponse", decode.A("status", s.status)).Bytes()
	}
	var ocsp []*decode.Node
	for _, o := range s.ocsp {
		ocsp = append(ocsp, decode.El("ocspResponse", b64s(o)))
	}
	var chain *decode.Node
	if !s.noChain {
		chain = chainEl("certificateChain", s.ri)
	}
	var nonceEl *decode.Node
	if s.nonce != "" {
		nonceEl = decode.El("nonce", s.nonce)
	}
	root := roapRoot("TokenDeliveryResponse", decode.A("status", "Success"), ident("deviceID", s.dev), ident("riID", s.ri.ID()),
		decode.El("tokenDeliveryID", s.tdid), nonceEl, decode.El("tokenQuantity", strconv.Itoa(s.qty)), chain, ocsp)
	signer := s.signer
	if signer == nil {
		signer = s.ri
	}
	return sign(t, root, signer.Key, mode)
}

// tokenRequest builds a signed tokenRequest (shared contract shape).
func tokenRequest(t testing.TB, dev *sim.Identity, riID, n, tdid string, peerKey string) []byte {
	t.Helper()
	var tdEl, exts *decode.Node
	if tdid != "" {
		tdEl = decode.El("tokenDeliveryID", tdid)
	}
	if peerKey != "" {
		exts = decode.El("extensions", ext("PeerKeyIdentifier", decode.El("identifier", decode.NS("xsi", decode.NSXSI), decode.A("algorithm", decode.AlgSHA1), decode.A("xsi:type", "roap:X509SPKIHash"), decode.El("hash", peerKey))))
	}
	root := roapRoot("tokenRequest", ident("deviceID", dev.ID()), ident("riID", riID), decode.El("nonce", n),
		decode.El("time", t0.Format("2006-01-02T15:04:05Z")), tdEl, chainEl("certificateChain", dev), exts)
	return sign(t, root, dev.Key, signPSS20)
}

func tokenReport(t testing.TB, dev *sim.Identity, riID, n, tdid string) []byte {
	t.Helper()
	root := roapRoot("tokenConsumptionReport", ident("deviceID", dev.ID()), ident("riID", riID), decode.El("nonce", n),
		decode.El("time", t0.Format("2006-01-02T15:04:05Z")), decode.El("tokenDeliveryID", tdid), decode.El("tokensConsumed", "3"),
		chainEl("certificateChain", dev))
	return sign(t, root, dev.Key, signPSS20)
}

// ldr is a leaveDomainRequest to build.
type ldr struct {
	dev          *sim.Identity
	riID         string
	nonce        string
	domain       string
	triggerNonce string
	noChain      bool
}

func (s ldr) build(t testing.TB) []byte {
	t.Helper()
	var chain *decode.Node
	if !s.noChain {
		chain = chainEl("certificateChain", s.dev)
	}
	var tn any
	if s.triggerNonce != "" {
		tn = decode.A("triggerNonce", s.triggerNonce)
	}
	root := roapRoot("leaveDomainRequest", tn, ident("deviceID", s.dev.ID()), ident("riID", s.riID), decode.El("nonce", s.nonce),
		decode.El("time", t0.Format("2006-01-02T15:04:05Z")), decode.El("domainID", s.domain), chain)
	return sign(t, root, s.dev.Key, signPSS20)
}

func leaveResponse(status, n, domain string) []byte {
	if status != "Success" {
		return roapRoot("leaveDomainResponse", decode.A("status", status)).Bytes()
	}
	return roapRoot("leaveDomainResponse", decode.A("status", status), decode.El("nonce", n), decode.El("domainID", domain)).Bytes()
}

// ---- SCE RDP messages (shaped like the shared vectors), MACed with mk ----

func macRoot(root *decode.Node, mk []byte, alg string) []byte {
	root.Remove("signature")
	sig := decode.El("signature")
	sig.Parent = root
	root.Children = append(root.Children, sig)
	sig.SetText(b64s(macOver(alg, mk, root.BytesWithout("signature"))))
	return root.Bytes()
}

func sceRoot(kind string, items ...any) *decode.Node {
	return decode.El("dom:"+kind, append([]any{decode.NS("dom", decode.NSDOM), decode.NS("gen", decode.NSGEN), decode.NS("roap", decode.NSROAP)}, items...)...)
}

func rdpRequest(riID, deaID, n string, embedded []byte, devChain *sim.Identity, mk []byte) []byte {
	info := decode.El("dom:rdpProxyLeaveUserDomainRequestInformation", decode.El("leaveDomainRequest", b64s(embedded)), chainEl("deviceCertificateChain", devChain))
	root := sceRoot("rdpProxyLeaveUserDomainRequest", ident("reqID", riID), ident("resID", deaID), decode.El("nonce", n), decode.El("reqInfo", info))
	return macRoot(root, mk, MACHMACSHA1)
}

func rdpResponse(status, riID, deaID, n, domain, devID string, mk []byte) []byte {
	if status != "Success" {
		root := sceRoot("rdpProxyLeaveUserDomainResponse", decode.A("status", status), ident("reqID", riID), ident("resID", deaID), decode.El("nonce", n))
		return macRoot(root, mk, MACHMACSHA1)
	}
	info := decode.El("dom:rdpProxyLeaveUserDomainResponseInformation", decode.El("userDomainId", domain), ident("deviceId", devID))
	root := sceRoot("rdpProxyLeaveUserDomainResponse", decode.A("status", status), ident("reqID", riID), ident("resID", deaID), decode.El("nonce", n), decode.El("resInfo", info))
	return macRoot(root, mk, MACHMACSHA1)
}

func drmTrigger(deaID, n, domain string, devs []string, mk []byte) []byte {
	var ds []*decode.Node
	for _, d := range devs {
		ds = append(ds, ident("deviceID", d))
	}
	info := decode.El("dom:rdpProxyLeaveUserDomainTrgInformation", decode.El("domainID", decode.A("domainID", domain)), ds)
	root := decode.El("gen:drmTrigger", decode.NS("gen", decode.NSGEN), decode.NS("dom", decode.NSDOM), decode.NS("roap", decode.NSROAP),
		decode.A("id", "trg-1"), decode.A("type", "rdpProxyLeaveUserDomain"), decode.A("version", "1.0"),
		ident("resID", deaID), decode.El("nonce", n), decode.El("reqURL", "https://dea.example/rdp"), decode.El("body", decode.El("trgInfo", info)))
	return macRoot(root, mk, MACHMACSHA1)
}

func roapTrigger(variant, riID, n, domain string) []byte {
	var dom *decode.Node
	if domain != "" {
		dom = decode.El("domainID", domain)
	}
	return decode.El("roap:roapTrigger", decode.NS("roap", decode.NSROAP), decode.A("version", "1.0"),
		decode.El(variant, decode.A("id", "t1"), ident("riID", riID), decode.El("nonce", n), decode.El("roapURL", "https://ri.example/roap"), dom)).Bytes()
}

// ---- decoding and asserting ----

func dec(b []byte) *decode.Message { return decode.Decode(b, decode.Hint{}) }

func decHint(b []byte, answers string, pushed bool) *decode.Message {
	return decode.Decode(b, decode.Hint{Answers: answers, Pushed: pushed})
}

func dump(fs []decode.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("\n  " + string(f.Severity) + " " + f.Rule + " " + f.Path + ": " + f.Message)
	}
	return b.String()
}

func find(fs []decode.Finding, id string) *decode.Finding {
	for i := range fs {
		if fs[i].Rule == id {
			return &fs[i]
		}
	}
	return nil
}

// want fails unless fs holds a finding of rule id with severity sev.
func want(t testing.TB, fs []decode.Finding, id string, sev decode.Severity) {
	t.Helper()
	for _, f := range fs {
		if f.Rule == id && f.Severity == sev {
			return
		}
	}
	t.Fatalf("want %s %s; got:%s", sev, id, dump(fs))
}

// wantNot fails if fs holds any finding of rule id.
func wantNot(t testing.TB, fs []decode.Finding, id string) {
	t.Helper()
	if f := find(fs, id); f != nil {
		t.Fatalf("unexpected %s %s: %s", f.Severity, f.Rule, f.Message)
	}
}

// noErrors fails on any error finding.
func noErrors(t testing.TB, fs []decode.Finding) {
	t.Helper()
	for _, f := range fs {
		if f.Severity == decode.SevError {
			t.Fatalf("unexpected error finding:%s", dump(fs))
		}
	}
}

// clean fails on any error or warning finding.
func clean(t testing.TB, fs []decode.Finding) {
	t.Helper()
	for _, f := range fs {
		if f.Severity != decode.SevInfo {
			t.Fatalf("unexpected finding:%s", dump(fs))
		}
	}
}

func sha1Sum(b []byte) []byte {
	h := sha1.Sum(b)
	return h[:]
}
