package decode

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
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers shared by the scanner, c14n, limits, fuzz and benchmark tests. Their names start with
// fx so they cannot clash with helpers other test files of the package define.

// fxVectorsDir is the shared folder of sample messages.
var fxVectorsDir = filepath.Join("..", "..", "shared", "vectors")

// fxVectorFiles returns the XML files (and schema fragments, which are XML too) of the shared
// vectors folder, including the negative subfolder, sorted. It returns nil when the folder is
// absent (a checkout without the shared data).
func fxVectorFiles(tb testing.TB) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(fxVectorsDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".xml") || strings.HasSuffix(p, ".xsd")) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		tb.Fatalf("listing %s: %v", fxVectorsDir, err)
	}
	sort.Strings(out)
	return out
}

// fxNeedXmllint skips the test when xmllint is not installed (CI installs it).
func fxNeedXmllint(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("xmllint"); err != nil {
		tb.Skip("xmllint not installed")
	}
}

// fxXmllintResult is what `xmllint --exc-c14n` made of a document.
type fxXmllintResult struct {
	Out      []byte
	Stderr   string
	Failed   bool // xmllint refused the document (not well-formed)
	NSErrors bool // xmllint reported namespace errors (undeclared prefixes and the like)
}

// fxXmllintC14N runs `xmllint --exc-c14n` on doc, written to a temporary file. xmllint only
// offers the "with comments" variant, so comments are removed from doc first: the result is then
// Exclusive XML Canonicalization without comments, which is what Canonical implements.
func fxXmllintC14N(tb testing.TB, doc []byte) fxXmllintResult {
	tb.Helper()
	doc = fxStripComments(doc)
	f, err := os.CreateTemp(tb.TempDir(), "c14n-*.xml")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := f.Write(doc); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("xmllint", "--nonet", "--exc-c14n", f.Name())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	r := fxXmllintResult{Out: stdout.Bytes(), Stderr: stderr.String()}
	if runErr != nil {
		if _, ok := runErr.(*exec.ExitError); !ok {
			tb.Fatalf("running xmllint: %v", runErr)
		}
		r.Failed = true
	}
	r.NSErrors = strings.Contains(r.Stderr, "namespace error")
	return r
}

// fxMustParse parses doc with the default limits or fails the test.
func fxMustParse(tb testing.TB, doc string) *Document {
	tb.Helper()
	d, err := ParseXML([]byte(doc), DefaultLimits)
	if err != nil {
		tb.Fatalf("ParseXML(%q): %v", fxShort(doc), err)
	}
	return d
}

// fxShort abbreviates a document for failure messages.
func fxShort(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// fxWalk calls fn for every node of the tree at n in document order.
func fxWalk(n *Node, fn func(*Node)) {
	fn(n)
	for _, c := range n.Children {
		fxWalk(c, fn)
	}
}

// fxElements returns every element of the tree at n in document order.
func fxElements(n *Node) []*Node {
	var out []*Node
	fxWalk(n, func(x *Node) {
		if x.Kind == ElementNode {
			out = append(out, x)
		}
	})
	return out
}

// fxInScope returns the namespace declarations in scope at n that n does not make itself,
// innermost binding per prefix, as (prefix, uri) pairs sorted by prefix.
func fxInScope(n *Node) [][2]string {
	own := map[string]bool{}
	for _, a := range n.Attrs {
		if a.IsNS {
			own[a.declaredPrefix()] = true
		}
	}
	seen := map[string]bool{}
	var out [][2]string
	for e := n.Parent; e != nil; e = e.Parent {
		for _, a := range e.Attrs {
			if !a.IsNS {
				continue
			}
			p := a.declaredPrefix()
			if own[p] || seen[p] {
				continue
			}
			seen[p] = true
			out = append(out, [2]string{p, a.Value})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// fxExtractSubtree returns the wire bytes of element n as a standalone document: the namespace
// declarations n inherits are copied onto its start tag, so that exclusive c14n of the result is,
// by the W3C rules, exclusive c14n of n's subtree within its document.
func fxExtractSubtree(raw []byte, n *Node) []byte {
	nameEnd := n.Start + 1 + len(n.QName())
	var b bytes.Buffer
	b.Write(raw[n.Start:nameEnd])
	for _, d := range fxInScope(n) {
		if d[0] == "" {
			if d[1] == "" {
				continue
			}
			b.WriteString(` xmlns="`)
		} else {
			b.WriteString(` xmlns:` + d[0] + `="`)
		}
		b.Write(appendAttrValue(nil, d[1]))
		b.WriteByte('"')
	}
	b.Write(raw[nameEnd:n.End])
	return b.Bytes()
}

// fxCut returns raw without the byte range of node n.
func fxCut(raw []byte, n *Node) []byte {
	out := append([]byte(nil), raw[:n.Start]...)
	return append(out, raw[n.End:]...)
}

// fxStripComments removes comments, leaving CDATA sections and processing instructions (which
// may contain "<!--") alone. An unterminated construct is left as it is, so a malformed document
// stays malformed.
func fxStripComments(doc []byte) []byte {
	var out []byte
	for i := 0; i < len(doc); {
		rest := doc[i:]
		var end []byte
		switch {
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			end = []byte("]]>")
		case bytes.HasPrefix(rest, []byte("<?")):
			end = []byte("?>")
		case bytes.HasPrefix(rest, []byte("<!--")):
			k := bytes.Index(rest[4:], []byte("-->"))
			if k < 0 {
				return append(out, rest...)
			}
			i += 4 + k + 3
			continue
		default:
			out = append(out, doc[i])
			i++
			continue
		}
		k := bytes.Index(rest[2:], end)
		if k < 0 {
			return append(out, rest...)
		}
		out = append(out, rest[:2+k+len(end)]...)
		i += 2 + k + len(end)
	}
	return out
}

// fxXmllintAccepts reports whether `xmllint --noout` finds doc well-formed (namespace errors
// are not well-formedness errors for xmllint either).
func fxXmllintAccepts(tb testing.TB, doc []byte) bool {
	tb.Helper()
	cmd := exec.Command("xmllint", "--nonet", "--noout", "-")
	cmd.Stdin = bytes.NewReader(doc)
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			tb.Fatalf("running xmllint: %v", err)
		}
	}
	return err == nil
}

// fxAllocBytes returns the bytes allocated by one call of f, averaged over runs calls. It uses
// the runtime's cumulative allocation counter, so it measures work done, not wall-clock time.
func fxAllocBytes(runs int, f func()) uint64 {
	f() // warm up: lazily initialized package state is not what is being measured
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// fxFindingIDs lists the rule IDs of m's findings.
func fxFindingIDs(m *Message) []string {
	var out []string
	for _, f := range m.Findings {
		out = append(out, f.Rule+"("+string(f.Severity)+")")
	}
	return out
}

// ---- Realistic messages for benchmarks, truncation tests and fuzz seeds ---------------------

// fxPKI is a small certificate hierarchy made once per test binary: a CA, a device and an RI
// certificate (2048-bit RSA) and a real OCSP response from the CA about the RI certificate.
type fxPKI struct {
	caKey, eeKey         *rsa.PrivateKey
	caDER, devDER, riDER []byte
	ocspDER              []byte
}

var (
	fxPKIOnce sync.Once
	fxPKIVal  *fxPKI
	fxPKIErr  error
)

func fxGetPKI(tb testing.TB) *fxPKI {
	tb.Helper()
	fxPKIOnce.Do(func() { fxPKIVal, fxPKIErr = fxMakePKI() })
	if fxPKIErr != nil {
		tb.Fatalf("making the test PKI: %v", fxPKIErr)
	}
	return fxPKIVal
}

func fxMakePKI() (*fxPKI, error) {
	p := &fxPKI{}
	var err error
	if p.caKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if p.eeKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	notBefore := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fx test CA", Organization: []string{"roapproxy tests"}},
		NotBefore: notBefore, NotAfter: notBefore.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if p.caDER, err = x509.CreateCertificate(rand.Reader, ca, ca, &p.caKey.PublicKey, p.caKey); err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(p.caDER)
	if err != nil {
		return nil, err
	}
	leaf := func(serial int64, cn string) ([]byte, error) {
		t := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: []string{"roapproxy tests"}},
			NotBefore: notBefore, NotAfter: notBefore.AddDate(2, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
		}
		return x509.CreateCertificate(rand.Reader, t, caCert, &p.eeKey.PublicKey, p.caKey)
	}
	if p.devDER, err = leaf(2, "fx device"); err != nil {
		return nil, err
	}
	if p.riDER, err = leaf(3, "fx rights issuer"); err != nil {
		return nil, err
	}
	if p.ocspDER, err = fxOCSPGood(caCert, p.caKey, big.NewInt(3), notBefore.Add(time.Hour)); err != nil {
		return nil, err
	}
	return p, nil
}

// The RFC 6960 structures, written out because golang.org/x/crypto is not a dependency of the
// module (decode/ only needs to recognize OCSP responses; verify/ judges them).
type (
	fxAlgID struct {
		Algorithm asn1.ObjectIdentifier
		Params    asn1.RawValue `asn1:"optional"`
	}
	fxCertID struct {
		HashAlgorithm  fxAlgID
		IssuerNameHash []byte
		IssuerKeyHash  []byte
		Serial         *big.Int
	}
	fxSingleResponse struct {
		CertID     fxCertID
		Good       asn1.RawValue
		ThisUpdate time.Time `asn1:"generalized"`
		NextUpdate time.Time `asn1:"generalized,explicit,tag:0"`
	}
	fxResponseData struct {
		ResponderID asn1.RawValue
		ProducedAt  time.Time `asn1:"generalized"`
		Responses   []fxSingleResponse
	}
	fxBasicResponse struct {
		TBS       asn1.RawValue
		Algorithm fxAlgID
		Signature asn1.BitString
		Certs     []asn1.RawValue `asn1:"explicit,tag:0,optional"`
	}
	fxResponseBytes struct {
		Type     asn1.ObjectIdentifier
		Response []byte
	}
	fxOCSPResponse struct {
		Status asn1.Enumerated
		Bytes  fxResponseBytes `asn1:"explicit,tag:0"`
	}
)

// fxOCSPGood returns a DER OCSPResponse, signed by the issuer itself, saying the certificate
// with the given serial is good.
func fxOCSPGood(issuer *x509.Certificate, key *rsa.PrivateKey, serial *big.Int, at time.Time) ([]byte, error) {
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, err
	}
	keyHash := sha1.Sum(spki.PublicKey.RightAlign())
	nameHash := sha1.Sum(issuer.RawSubject)
	keyHashDER, err := asn1.Marshal(keyHash[:])
	if err != nil {
		return nil, err
	}
	null := asn1.RawValue{Tag: asn1.TagNull}
	at = at.UTC().Truncate(time.Second)
	tbs, err := asn1.Marshal(fxResponseData{
		ResponderID: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: keyHashDER}, // byKey
		ProducedAt:  at,
		Responses: []fxSingleResponse{{
			CertID:     fxCertID{fxAlgID{asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, null}, nameHash[:], keyHash[:], serial},
			Good:       asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0}, // good [0] IMPLICIT NULL
			ThisUpdate: at,
			NextUpdate: at.Add(7 * 24 * time.Hour),
		}},
	})
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(tbs)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return nil, err
	}
	basic, err := asn1.Marshal(fxBasicResponse{
		TBS:       asn1.RawValue{FullBytes: tbs},
		Algorithm: fxAlgID{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, null},
		Signature: asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(fxOCSPResponse{Bytes: fxResponseBytes{asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}, basic}})
}

func fxB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// fxKeyID is a roap:Identifier for the certificate's key, in the form Symbian writes.
func fxKeyID(name string, certDER []byte) *Node {
	c, err := x509.ParseCertificate(certDER)
	if err != nil {
		panic(err) // certificates made by fxMakePKI always parse
	}
	h := sha1.Sum(c.RawSubjectPublicKeyInfo)
	return El(name, El("keyIdentifier", NS("xsi", NSXSI), A("algorithm", AlgSHA1), A("xsi:type", "roap:X509SPKIHash"), El("hash", fxB64(h[:]))))
}

func fxExtension(typ string, children ...any) *Node {
	return El("extension", append([]any{NS("xsi", NSXSI), A("xsi:type", "roap:"+typ)}, children...)...)
}

// fxSign appends a real RSASSA-PSS (SHA-1, salt 20) signature over the message without its
// signature element, as the contract describes, and returns the canonical bytes.
func fxSign(tb testing.TB, key *rsa.PrivateKey, root *Node) []byte {
	tb.Helper()
	digest := sha1.Sum(root.BytesWithout("signature"))
	sig, err := rsa.SignPSS(rand.Reader, key, crypto.SHA1, digest[:], &rsa.PSSOptions{SaltLength: 20})
	if err != nil {
		tb.Fatal(err)
	}
	root.Children = append(root.Children, El("signature", fxB64(sig)))
	return root.Bytes()
}

// fxRORequest builds a canonical, signed roRequest with a one-certificate device chain.
func fxRORequest(tb testing.TB) []byte {
	tb.Helper()
	p := fxGetPKI(tb)
	nonce := make([]byte, 32)
	for i := range nonce {
		nonce[i] = byte(i*37 + 11)
	}
	var ros []*Node
	for i := range 5 {
		ros = append(ros, El("roID", fmt.Sprintf("ro-%04d-acme-movie-2026", i+1)))
	}
	root := El("roap:roRequest", NS("roap", NSROAP), A("triggerNonce", "c3RyaWdnZXItbm9uY2UtMTI="),
		fxKeyID("deviceID", p.devDER),
		fxKeyID("riID", p.riDER),
		El("nonce", fxB64(nonce)),
		El("time", "2026-03-14T15:09:26Z"),
		El("roInfo", ros),
		El("certificateChain", El("certificate", fxB64(p.devDER))),
		El("extensions",
			fxExtension("NoOCSPResponse"),
			fxExtension("TransactionIdentifier", El("contentID", "cid:movie-0001@acme.example"), El("id", "ttid-0001"))),
	)
	return fxSign(tb, p.eeKey, root)
}

// fxTokenDeliveryResponse builds a canonical, signed 2-pass Success TokenDeliveryResponse (seed
// 001 order) with a two-certificate RI chain and one OCSP response.
func fxTokenDeliveryResponse(tb testing.TB) []byte {
	tb.Helper()
	p := fxGetPKI(tb)
	root := El("roap:TokenDeliveryResponse", NS("roap", NSROAP), A("status", "Success"),
		fxKeyID("deviceID", p.devDER),
		fxKeyID("riID", p.riDER),
		El("tokenDeliveryID", "tdid-0001"),
		El("nonce", "2AK0eNzeUFXfOhHE1l9Z8w=="),
		El("tokenQuantity", "10"),
		El("tokenReportingURL", "https://ri.example.invalid/token-report"),
		El("earliestReportingTime", "2026-07-06T00:00:00Z"),
		El("latestReportingTime", "2026-07-08T00:00:00Z"),
		El("latestTokenConsumptionTime", "2026-07-09T00:00:00Z"),
		El("certificateChain", El("certificate", fxB64(p.riDER)), El("certificate", fxB64(p.caDER))),
		El("ocspResponse", fxB64(p.ocspDER)),
		El("extensions", fxExtension("Movable")),
	)
	return fxSign(tb, p.eeKey, root)
}
