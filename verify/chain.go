package verify

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"time"

	"github.com/roapproxy/roapproxy/decode"
)

// OMA key purposes (sce-token §4, OMNA registry).
var (
	OIDRightsIssuer = asn1.ObjectIdentifier{2, 23, 43, 6, 1, 1}
	OIDDRMAgent     = asn1.ObjectIdentifier{2, 23, 43, 6, 1, 2}
	OIDSCEDRMAgent  = asn1.ObjectIdentifier{2, 23, 43, 6, 1, 4}
	OIDDEALocal     = asn1.ObjectIdentifier{2, 23, 43, 6, 1, 10}
	OIDDEANetwork   = asn1.ObjectIdentifier{2, 23, 43, 6, 1, 11}
)

// maxChainLen bounds the path the walker builds (message certificates plus completions).
const maxChainLen = 10

// checkLink verifies that parent's key signed child. It uses CheckSignature rather than
// CheckSignatureFrom: the latter refuses SHA-1, which fielded DRM PKIs use, and judges basic
// constraints, which the walker reports separately. Should a future Go refuse SHA-1 here too,
// SHA1WithRSA is checked by hand.
func checkLink(child, parent *x509.Certificate) error {
	err := parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature)
	var insecure x509.InsecureAlgorithmError
	if errors.As(err, &insecure) && child.SignatureAlgorithm == x509.SHA1WithRSA {
		pub, ok := parent.PublicKey.(*rsa.PublicKey)
		if !ok {
			return err
		}
		h := sha1.Sum(child.RawTBSCertificate)
		return rsa.VerifyPKCS1v15(pub, crypto.SHA1, h[:], child.Signature)
	}
	return err
}

// link is checkLink with a cache: signatures do not depend on time, and the same RI and device
// chains arrive with every message.
func (v *Verifier) link(child, parent *x509.Certificate) error {
	return v.sigCached(child.Raw, parent.RawSubjectPublicKeyInfo, func() error { return checkLink(child, parent) })
}

// sigMemo is one remembered signature check. It keeps the exact bytes it was made over, so a
// collision of the (fast, non-cryptographic) map hash can only cost a recomputation, never turn
// into a false "verified".
type sigMemo struct {
	data, key []byte
	err       error
}

// sigCached returns check(), remembering the result for (data, key).
func (v *Verifier) sigCached(data, key []byte, check func() error) error {
	var h maphash.Hash
	h.SetSeed(v.seed)
	h.Write(data)
	h.WriteByte(0)
	h.Write(key)
	k := h.Sum64()
	v.cacheMu.Lock()
	e, ok := v.sigs.get(k)
	v.cacheMu.Unlock()
	if ok && bytes.Equal(e.data, data) && bytes.Equal(e.key, key) {
		return e.err
	}
	err := check()
	v.cacheMu.Lock()
	v.sigs.put(k, &sigMemo{data: data, key: key, err: err})
	v.cacheMu.Unlock()
	return err
}

// chainOpts says how to judge one chain.
type chainOpts struct {
	path       string      // field path of the chain, for findings
	role       decode.Role // whose chain: decides the key purpose
	at         time.Time
	proxyLeave bool   // device chain of a proxied User Domain leave (seed 000 key-purpose rule)
	wantID     string // identifier the message gives the leaf's owner (riID, deviceID), or ""
	wantIDName string // "riID", "deviceID"
	wantIDPath string
	// wantIDNode, when set, is the element wantID came from; its path replaces wantIDPath and is
	// built only if the identifier does not match.
	wantIDNode *decode.Node
	// cached says the chain was learnt from an earlier message rather than sent in this one: the
	// walker appended its anchor then, so that is no news now.
	cached bool
}

func (o *chainOpts) idPath() string {
	if o.wantIDNode != nil {
		return decode.PathOf(o.wantIDNode)
	}
	return o.wantIDPath
}

// chainResult is the verdict on one chain.
type chainResult struct {
	findings []decode.Finding
	path     []*x509.Certificate // leaf first, completed up to the anchor when one was found
	anchored bool
	linksOK  bool // every link signature verifies and names match
	timeOK   bool
	caOK     bool
	kpOK     bool
	idOK     bool
	reasons  []string // short reasons the chain is invalid, for summaries
}

// valid says the chain is good enough to rely on: every check passed, and it is anchored when
// anchors are configured.
func (r *chainResult) valid(haveAnchors bool) bool {
	return r.linksOK && r.timeOK && r.caOK && r.kpOK && r.idOK && (r.anchored || !haveAnchors)
}

// certName quotes a certificate's name for findings (strconv.Quote is what %q does with a
// string, without fmt's overhead; an RI response's coverage note names a certificate each time).
func certName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return strconv.Quote(c.Subject.CommonName)
	}
	return strconv.Quote(c.Subject.String())
}

func hasOID(list []asn1.ObjectIdentifier, o asn1.ObjectIdentifier) bool {
	for _, x := range list {
		if x.Equal(o) {
			return true
		}
	}
	return false
}

func hasAnyEKU(c *x509.Certificate) bool {
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

func certPath(chainPath string, i int) string {
	if chainPath == "" {
		return ""
	}
	return fmt.Sprintf("%s/certificate[%d]", chainPath, i+1)
}

// walkChain judges a certificate chain by hand (x509.Verify refuses SHA-1 chains): link
// signatures and names, an anchor found by issuer name and signature, validity at the message
// time, basic constraints and path length, the OMA key purpose of the role, and the identifier.
func (v *Verifier) walkChain(certs []*x509.Certificate, o chainOpts) *chainResult {
	r := &chainResult{linksOK: true, timeOK: true, caOK: true, kpOK: true, idOK: true}
	if len(certs) == 0 {
		r.linksOK = false
		r.reasons = append(r.reasons, "empty chain")
		return r
	}
	fail := func(flag *bool, reason string, f decode.Finding) {
		*flag = false
		r.reasons = append(r.reasons, reason)
		r.findings = append(r.findings, f)
	}
	// Room for the completions too, so the path is allocated once.
	path := append(make([]*x509.Certificate, 0, maxChainLen), certs[:min(len(certs), maxChainLen)]...)
	for i := 0; i+1 < len(path); i++ {
		child, parent := path[i], path[i+1]
		if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
			fail(&r.linksOK, "order", RuleChainOrder.At(certPath(o.path, i+1), "certificate %d (%s) does not issue certificate %d: its subject differs from the issuer %s named by %s", i+2, certName(parent), i+1, child.Issuer.String(), certName(child)))
			continue
		}
		if err := v.link(child, parent); err != nil {
			fail(&r.linksOK, "signature", RuleChainSig.At(certPath(o.path, i), "signature of %s by %s does not verify: %v", certName(child), certName(parent), err))
		}
	}

	// Complete the path: the root is normally left out (roap-core §3.4), and an intermediate may be
	// known from the trust directory or an earlier message.
	last := path[len(path)-1]
	haveAnchors := v.trust.hasAnchors()
	switch {
	case v.trust.isAnchor(last):
		r.anchored = true
		if !o.cached && (len(path) > 1 || isSelfSigned(last)) {
			r.findings = append(r.findings, RuleChainRoot.At(certPath(o.path, len(path)-1), "the chain includes the trust anchor %s; senders normally leave the root out", certName(last)))
		}
	default:
		badAnchor := false
		for len(path) < maxChainLen && !r.anchored {
			last = path[len(path)-1]
			if bytes.Equal(last.RawIssuer, last.RawSubject) {
				break // self-signed and not an anchor
			}
			var named, verified *x509.Certificate
			for _, a := range v.trust.anchorsFor(last.RawIssuer) {
				named = a
				if v.link(last, a) == nil {
					verified = a
					break
				}
			}
			if verified != nil {
				path = append(path, verified)
				r.anchored = true
				break
			}
			if named != nil {
				badAnchor = true
				fail(&r.linksOK, "untrusted", RuleChainUntrusted.At(certPath(o.path, len(path)-1), "%s names a trusted root %s as issuer, but that root's key did not sign it: another PKI with the same names", certName(last), certName(named)))
				break
			}
			var next *x509.Certificate
			for _, c := range v.trust.intermediatesFor(last.RawIssuer) {
				if v.link(last, c) == nil {
					next = c
					break
				}
			}
			if next == nil {
				break
			}
			path = append(path, next)
		}
		if !r.anchored && !badAnchor {
			if haveAnchors {
				fail(&r.linksOK, "untrusted", RuleChainUntrusted.At(o.path, "no configured trust anchor issued %s (issuer %s)", certName(path[len(path)-1]), path[len(path)-1].Issuer.String()))
			} else {
				r.findings = append(r.findings, RuleChainNoAnchors.At(o.path, "no trust anchors configured (--trust): the chain was checked link by link but not anchored"))
			}
		}
	}
	r.path = path

	// Validity at the message time, anchor included.
	at := func(i int) string {
		if i >= len(certs) {
			return o.path // a certificate the walker added, not in the message
		}
		return certPath(o.path, i)
	}
	for i, c := range path {
		switch {
		case o.at.After(c.NotAfter):
			fail(&r.timeOK, "expired", RuleChainExpired.At(at(i), "%s expired %s; message time %s", certName(c), c.NotAfter.UTC().Format(time.RFC3339), o.at.UTC().Format(time.RFC3339)))
		case o.at.Before(c.NotBefore):
			fail(&r.timeOK, "not yet valid", RuleChainNotYet.At(at(i), "%s is valid from %s; message time %s", certName(c), c.NotBefore.UTC().Format(time.RFC3339), o.at.UTC().Format(time.RFC3339)))
		}
	}

	// Issuers must be CAs within their path length. A configured anchor is trusted as it is (a v1
	// root has no extensions at all).
	for i := 1; i < len(path); i++ {
		c := path[i]
		if r.anchored && i == len(path)-1 {
			continue
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			fail(&r.caOK, "issuer not a CA", RuleChainCA.At(at(i), "%s issues certificate %d but is not a CA certificate (basic constraints)", certName(c), i))
			continue
		}
		if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
			fail(&r.caOK, "issuer lacks keyCertSign", RuleChainCA.At(at(i), "%s issues certificates but its key usage lacks keyCertSign", certName(c)))
		}
		if c.MaxPathLen >= 0 && (c.MaxPathLen > 0 || c.MaxPathLenZero) && i-1 > c.MaxPathLen {
			fail(&r.caOK, "path length", RuleChainCA.At(at(i), "%s allows %d intermediate CA(s) below it; the chain has %d", certName(c), c.MaxPathLen, i-1))
		}
	}
	if r.anchored {
		a := path[len(path)-1]
		if len(path) > 1 && a.BasicConstraintsValid && !a.IsCA {
			fail(&r.caOK, "anchor not a CA", RuleChainCA.At(o.path, "trust anchor %s is not a CA certificate", certName(a)))
		}
	}

	// Key purposes of the end entity.
	leaf := path[0]
	eku := leaf.UnknownExtKeyUsage
	lp := func() string {
		if o.path == "" {
			return ""
		}
		return o.path + "/certificate[1]"
	}
	switch o.role {
	case decode.RoleRI:
		if !hasOID(eku, OIDRightsIssuer) && !hasAnyEKU(leaf) {
			fail(&r.kpOK, "key purpose", RuleChainKP.At(lp(), "RI certificate %s lacks oma-kp-rightsIssuer (2.23.43.6.1.1)%s", certName(leaf), ekuList(leaf)))
		}
	case decode.RoleDevice:
		has2 := hasOID(eku, OIDDRMAgent) || hasAnyEKU(leaf)
		has4 := hasOID(eku, OIDSCEDRMAgent)
		switch {
		case o.proxyLeave && (!has2 || has4):
			what := "lacks oma-kp-drmAgent (2.23.43.6.1.2)"
			if has4 {
				what = "carries oma-kp-sceDrmAgent (2.23.43.6.1.4)"
				if !has2 {
					what = "lacks oma-kp-drmAgent and carries oma-kp-sceDrmAgent"
				}
			}
			fail(&r.kpOK, "key purpose", RuleDevChainKP.At(lp(), "device certificate %s %s: a v2.x DRM Agent leaving a User Domain through an RI must not be an SCE DRM Agent; the DEA must answer InvalidCertificateChain%s", certName(leaf), what, ekuList(leaf)))
		case !has2:
			fail(&r.kpOK, "key purpose", RuleChainKP.At(lp(), "device certificate %s lacks oma-kp-drmAgent (2.23.43.6.1.2)%s", certName(leaf), ekuList(leaf)))
		}
	case decode.RoleDEA:
		if !hasOID(eku, OIDDEANetwork) && !hasOID(eku, OIDDEALocal) && !hasAnyEKU(leaf) {
			fail(&r.kpOK, "key purpose", RuleChainKP.AtSev(sevW, lp(), "DEA certificate %s carries neither domainEnforcementAgentNetwork nor -Local (2.23.43.6.1.11 / .10)%s", certName(leaf), ekuList(leaf)))
		}
	}

	if o.wantID != "" {
		if got := v.trust.keyID(leaf); got != o.wantID {
			fail(&r.idOK, "identifier", RuleChainID.At(o.idPath(), "%s is %s but the leaf certificate %s has SPKI hash %s", o.wantIDName, o.wantID, certName(leaf), got))
		}
	}

	// Accepted weaknesses of fielded DRM PKIs, and extensions nobody here understands.
	var weak []string
	for i, c := range path {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok && pub.N.BitLen() < 2048 {
			weak = append(weak, fmt.Sprintf("%s has a %d-bit key", certName(c), pub.N.BitLen()))
		}
		if i+1 < len(path) || !r.anchored {
			if c.SignatureAlgorithm == x509.SHA1WithRSA || c.SignatureAlgorithm == x509.ECDSAWithSHA1 {
				weak = append(weak, fmt.Sprintf("%s is SHA-1 signed", certName(c)))
			}
		}
		if len(c.UnhandledCriticalExtensions) > 0 {
			var ids []string
			for _, e := range c.UnhandledCriticalExtensions {
				ids = append(ids, e.String())
			}
			r.findings = append(r.findings, RuleChainCritExt.At(at(i), "%s carries critical extension(s) %s that this verifier does not process", certName(c), strings.Join(ids, ", ")))
		}
	}
	if len(weak) > 0 {
		r.findings = append(r.findings, RuleChainWeak.At(o.path, "accepted as fielded DRM PKIs do: %s", strings.Join(weak, "; ")))
	}
	return r
}

func ekuList(c *x509.Certificate) string {
	var s []string
	for _, o := range c.UnknownExtKeyUsage {
		s = append(s, o.String())
	}
	for _, u := range c.ExtKeyUsage {
		s = append(s, fmt.Sprintf("ExtKeyUsage(%d)", u))
	}
	if len(s) == 0 {
		return " (no extended key usage)"
	}
	return " (has " + strings.Join(s, ", ") + ")"
}
