package verify

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"hash"
	"strings"

	"github.com/roapproxy/roapproxy/decode"
)

// tri is a three-valued verdict: a check passed, failed, or could not be made.
type tri int8

const (
	unknown tri = iota
	pass
	fail
)

func (t tri) String() string {
	switch t {
	case pass:
		return "pass"
	case fail:
		return "fail"
	}
	return "unknown"
}

// topChild returns the last direct element child of root with the given local name (the
// signature is the last child).
func topChild(root *decode.Node, local string) *decode.Node {
	if root == nil {
		return nil
	}
	var out *decode.Node
	for _, c := range root.Children {
		if c.Kind == decode.ElementNode && c.Local == local {
			out = c
		}
	}
	return out
}

func b64(s string) ([]byte, bool) {
	b, err := decode.DecodeBase64(s)
	return b, err == nil && len(b) > 0
}

// rsaSigInput is what one RSA signature check needs.
type rsaSigInput struct {
	m      *decode.Message
	signer *x509.Certificate
	prefix []byte // earlier messages the signature covers (registration)
	rule   decode.Rule
	who    string // "device", "RI"
}

// verifyPSS20OrStd is verifyPSS20, or crypto/rsa for the keys it declines.
func verifyPSS20OrStd(pub *rsa.PublicKey, digest, sig []byte) error {
	if err := verifyPSS20(pub, digest, sig); err != errPSSDeclined {
		return err
	}
	return rsa.VerifyPSS(pub, crypto.SHA1, digest, sig, &rsa.PSSOptions{SaltLength: 20, Hash: crypto.SHA1})
}

// verifyRSASig checks a ROAP signature as roap-core §7.2 says: over the bytes as sent minus the
// top-level signature element first, then over the re-canonicalized message (the sender
// re-serialized: a warning); RSASSA-PSS with salt 20, then any salt, then PKCS#1 v1.5 (a
// deviation: a warning).
func verifyRSASig(in rsaSigInput) (tri, []decode.Finding) {
	m := in.m
	sigNode := topChild(m.Root, "signature")
	if sigNode == nil {
		return unknown, nil // presence is decode's business
	}
	// The path is built only for a finding.
	path := func() string { return decode.PathOf(sigNode) }
	sig, ok := b64(sigNode.TextContent())
	if !ok {
		return fail, []decode.Finding{in.rule.At(path(), "signature is not base64, so it cannot verify")}
	}
	pub, ok := in.signer.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fail, []decode.Finding{in.rule.At(path(), "%s key of %s is %T, not RSA; ROAP signatures are RSA", in.who, certName(in.signer), in.signer.PublicKey)}
	}
	// The re-canonicalized variant is built only when the bytes as sent fail: it costs as much
	// as the rest of the check.
	// The bytes as sent are hashed in the two pieces around the signature element, so the common
	// case copies nothing.
	variant := func(i int) [][]byte {
		if i == 0 {
			return m.SignedParts()
		}
		if c := m.CanonicalWithoutSignature(); c != nil && !bytes.Equal(c, m.SignedBytes()) {
			return [][]byte{c}
		}
		return nil
	}
	for vi := 0; vi < 2; vi++ {
		parts := variant(vi)
		if parts == nil {
			continue
		}
		h := sha1.New()
		h.Write(in.prefix)
		for _, p := range parts {
			h.Write(p)
		}
		digest := h.Sum(nil)
		var fs []decode.Finding
		matched := false
		switch {
		case verifyPSS20OrStd(pub, digest, sig) == nil:
			matched = true
		case rsa.VerifyPSS(pub, crypto.SHA1, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA1}) == nil:
			matched = true
			fs = append(fs, RuleSigSalt.At(path(), "RSASSA-PSS verifies with an auto-detected salt length, not the default 20"))
		case rsa.VerifyPKCS1v15(pub, crypto.SHA1, digest, sig) == nil:
			matched = true
			fs = append(fs, RuleSigPKCS1.At(path(), "the %s signed with PKCS#1 v1.5 (SHA-1), not RSASSA-PSS as ROAP requires", in.who))
		}
		if !matched {
			continue
		}
		if vi > 0 {
			fs = append(fs, RuleSigReencoded.At(path(), "the signature verifies only over the exclusive-c14n of the parsed message, not over the bytes as sent: the message was re-serialized after signing"))
		}
		if pub.N.BitLen() < 1024 {
			fs = append(fs, RuleSigWeakKey.At(path(), "verified, but the %s key is only %d bits", in.who, pub.N.BitLen()))
		}
		return pass, fs
	}
	if pub.N.BitLen() < 1024 {
		return unknown, []decode.Finding{RuleSigWeakKey.At(path(), "the %s key is %d bits: Go refuses RSA keys under 1024 bits unless GODEBUG=rsa1024min=0, so the signature was not checked", in.who, pub.N.BitLen())}
	}
	what := "the message without its signature element"
	if len(in.prefix) > 0 {
		what = "the earlier messages plus " + what
	}
	return fail, []decode.Finding{in.rule.At(path(), "signature does not verify with the %s key of %s (RSASSA-PSS/SHA-1 with salt 20 or any salt, PKCS#1 v1.5) over %s", in.who, certName(in.signer), what)}
}

// macOver computes the MAC of data with key k.
func macOver(alg string, key, data []byte) []byte {
	var h func() hash.Hash = sha1.New
	if alg == MACHMACSHA256 {
		h = sha256.New
	}
	m := hmac.New(h, key)
	m.Write(data)
	return m.Sum(nil)
}

// verifyMAC checks the MAC of an SCE message (docs/sce-mac.md): HMAC with the context MK over the
// exclusive canonical form of the message without its signature element (the shared contract's
// assumption, SCE-GEN not being public), then over the bytes as sent minus the signature
// element; with the configured HMAC hash, then the other one.
func (v *Verifier) verifyMAC(m *decode.Message, reqID, resID string, r decode.Rule) (tri, []decode.Finding) {
	sigNode := topChild(m.Root, "signature")
	if sigNode == nil {
		return unknown, nil
	}
	path := decode.PathOf(sigNode)
	keys := v.trust.macKeysFor(reqID, resID)
	if len(keys) == 0 {
		ctx := "reqID " + orDash(reqID) + ", resID " + orDash(resID)
		return unknown, []decode.Finding{RuleMACNoKey.At(path, "no MAC key configured for this context (%s): the MAC is unverifiable (--keys)", ctx)}
	}
	mac, ok := b64(sigNode.TextContent())
	if !ok {
		return fail, []decode.Finding{r.At(path, "signature is not base64, so the MAC cannot verify")}
	}
	variants := [][]byte{m.CanonicalWithoutSignature()}
	if raw := m.SignedBytes(); !bytes.Equal(raw, variants[0]) {
		variants = append(variants, raw)
	}
	for vi, body := range variants {
		for _, k := range keys {
			for _, alg := range []string{k.Alg, otherAlg(k.Alg)} {
				if !hmac.Equal(mac, macOver(alg, k.Key, body)) {
					continue
				}
				var fs []decode.Finding
				if alg != k.Alg {
					fs = append(fs, RuleMACAlg.At(path, "the MAC verifies with %s, but %s configures %s", alg, k.name(), k.Alg))
				}
				if vi > 0 {
					fs = append(fs, RuleMACForm.At(path, "the MAC covers the bytes as sent (minus the signature element), not their exclusive canonical form"))
				}
				return pass, fs
			}
		}
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.name()
	}
	return fail, []decode.Finding{r.At(path, "MAC does not verify with the configured key(s) %s over the message without its signature element (canonical and as sent; HMAC-SHA1 and HMAC-SHA256 tried)", strings.Join(names, ", "))}
}

func otherAlg(a string) string {
	if a == MACHMACSHA256 {
		return MACHMACSHA1
	}
	return MACHMACSHA256
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// findDesc returns the first element below n (depth-first, n included) whose local name equals
// one of names, case-insensitively.
func findDesc(n *decode.Node, depth int, names ...string) *decode.Node {
	if n == nil || depth < 0 {
		return nil
	}
	for _, name := range names {
		if strings.EqualFold(n.Local, name) {
			return n
		}
	}
	for _, c := range n.Children {
		if c.Kind == decode.ElementNode {
			if f := findDesc(c, depth-1, names...); f != nil {
				return f
			}
		}
	}
	return nil
}

// findByID returns the element below root whose id (or Id, ID) attribute equals id.
func findByID(root *decode.Node, id string, depth int) *decode.Node {
	if root == nil || depth < 0 {
		return nil
	}
	for _, a := range root.Attrs {
		if !a.IsNS && strings.EqualFold(a.Local, "id") && a.Value == id {
			return root
		}
	}
	for _, c := range root.Children {
		if c.Kind == decode.ElementNode {
			if f := findByID(c, id, depth-1); f != nil {
				return f
			}
		}
	}
	return nil
}

// checkTriggerSig recomputes the DigestValue of a signed ROAP trigger (roap-core §6.4); the HMAC
// itself needs a key wrapped under the Domain Key, which a proxy does not have.
func checkTriggerSig(m *decode.Message) []decode.Finding {
	sig := topChild(m.Root, "signature")
	if sig == nil {
		sig = topChild(m.Root, "Signature")
	}
	if sig == nil {
		return nil
	}
	path := decode.PathOf(sig)
	ref := findDesc(sig, 4, "Reference")
	if ref == nil {
		return []decode.Finding{RuleTrigDigest.At(path, "the trigger signature has no ds:Reference, so nothing names what it covers")}
	}
	uri, _ := ref.Attr("URI")
	target := m.Root
	if strings.HasPrefix(uri, "#") {
		target = findByID(m.Root, uri[1:], 8)
		if target == nil {
			return []decode.Finding{RuleTrigDigest.At(decode.PathOf(ref), "Reference URI %q names no element of the trigger", uri)}
		}
	} else if uri != "" {
		return []decode.Finding{RuleTrigDigest.AtSev(sevW, decode.PathOf(ref), "Reference URI %q is not a same-document reference; the digest was not checked", uri)}
	}
	dv := findDesc(ref, 2, "DigestValue")
	want, ok := b64(dv.TextContent())
	if !ok {
		return []decode.Finding{RuleTrigDigest.At(decode.PathOf(ref), "DigestValue is missing or not base64")}
	}
	var fs []decode.Finding
	var canon []byte
	if target == m.Root {
		canon = decode.Canonical(target, func(n *decode.Node) bool { return n == sig })
	} else {
		canon = decode.Canonical(target, nil)
	}
	got := sha1.Sum(canon)
	switch {
	case bytes.Equal(got[:], want):
	case len(m.Raw) > 0 && m.Raw[0] != '<':
		fs = append(fs, RuleTrigDigest.AtSev(sevI, decode.PathOf(dv), "WBXML trigger: the digest over the reconstructed XML does not match, which the loss of namespace declarations in WBXML can explain; not judged"))
	default:
		raw := sha1.Sum(m.Raw[target.Start:target.End])
		if bytes.Equal(raw[:], want) {
			fs = append(fs, RuleTrigDigest.AtSev(sevW, decode.PathOf(dv), "DigestValue matches the raw bytes of <%s> but not their exclusive canonical form", target.Local))
		} else {
			fs = append(fs, RuleTrigDigest.At(decode.PathOf(dv), "DigestValue %s differs from SHA-1 %s of the canonical <%s>: the trigger was altered after signing", base64.StdEncoding.EncodeToString(want), base64.StdEncoding.EncodeToString(got[:]), target.Local))
		}
	}
	fs = append(fs, RuleTrigMAC.At(path, "the trigger HMAC needs the key in encKey, wrapped under the Domain Key (or device key): unverifiable at the proxy"))
	return fs
}
