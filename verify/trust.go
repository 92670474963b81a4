package verify

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/roapproxy/roapproxy/decode"
)

// MAC algorithms for SCE contexts (docs/sce-mac.md).
const (
	MACHMACSHA1   = "hmac-sha1"
	MACHMACSHA256 = "hmac-sha256"
)

// MACKey is the MAC key (MK) of one RI<->DEA context. Either ID names one side (the line matches
// any message whose reqID or resID equals it) or RI and DEA name the pair.
type MACKey struct {
	ID      string // base64 identifier of one side, or ""
	RI, DEA string // base64 identifiers of the pair, or ""
	Key     []byte
	Alg     string // MACHMACSHA1 (default) or MACHMACSHA256
	Source  string // file:line it came from, for findings
}

func (k MACKey) name() string {
	if k.Source != "" {
		return k.Source
	}
	if k.ID != "" {
		return "key for " + k.ID
	}
	return "key for " + k.RI + "/" + k.DEA
}

// Trust is what the verifier is told or learns about identities: trust anchors, MAC keys of SCE
// contexts, and certificates seen in earlier messages (so that messages without a chain still
// verify). It is safe for concurrent use.
type Trust struct {
	mu      sync.RWMutex
	anchors []*x509.Certificate
	bySubj  map[string][]*x509.Certificate // anchors by RawSubject
	keys    []MACKey
	// chains holds the last valid chain seen per identifier (SHA-1 of the leaf SPKI, base64),
	// leaf first; intermediates holds issuing certificates by RawSubject, to complete chains
	// that stop short of an anchor.
	chains        *bounded[string, []*x509.Certificate]
	intermediates *bounded[string, []*x509.Certificate]

	idMu sync.Mutex
	ids  *bounded[*x509.Certificate, string] // see keyID
}

// DefaultCertCache is the number of identities (and of intermediate subjects) a Trust remembers.
const DefaultCertCache = 4096

// NewTrust returns an empty Trust: no anchors, no keys, an empty certificate cache.
func NewTrust() *Trust {
	return &Trust{
		bySubj:        map[string][]*x509.Certificate{},
		chains:        newBounded[string, []*x509.Certificate](DefaultCertCache, true),
		intermediates: newBounded[string, []*x509.Certificate](DefaultCertCache, true),
		ids:           newBounded[*x509.Certificate, string](512, true),
	}
}

// KeyID returns the ROAP identifier of a certificate: base64 of SHA-1 over its DER
// SubjectPublicKeyInfo (roap-core §3.2).
func KeyID(c *x509.Certificate) string {
	h := sha1.Sum(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(h[:])
}

// keyID is KeyID remembered per certificate: every message's chain is compared with the
// identifier the message names and learned under its leaf's. A parsed certificate is never
// modified and the memo holds it, so the pointer cannot come to name another certificate.
func (t *Trust) keyID(c *x509.Certificate) string {
	return remember(&t.idMu, t.ids, c, func() string { return KeyID(c) })
}

// LoadTrust reads certificates from PEM (or single DER) files and from directories (their
// regular files, not recursively). Self-signed certificates become trust anchors. Other
// certificates in a file named explicitly become anchors too (an operator pinning an
// intermediate); in a directory they are only remembered as known certificates, so pointing
// --trust at a directory of test PKI files (root, CA, leaves, chains, keys) trusts the root and
// lets the CA and leaves complete chains without trusting them.
func LoadTrust(paths ...string) (*Trust, error) {
	t := NewTrust()
	for _, p := range paths {
		if err := t.load(p); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *Trust) load(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("verify: trust: %w", err)
	}
	if !st.IsDir() {
		certs, err := readCertFile(path)
		if err != nil {
			return err
		}
		if len(certs) == 0 {
			return fmt.Errorf("verify: trust: %s holds no certificate", path)
		}
		t.AddAnchors(certs...)
		return nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("verify: trust: %w", err)
	}
	found := 0
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		certs, err := readCertFile(filepath.Join(path, e.Name()))
		if err != nil {
			continue // keys, notes and other files share such directories
		}
		for _, c := range certs {
			found++
			if isSelfSigned(c) {
				t.AddAnchors(c)
			} else {
				t.learnCert(c)
			}
		}
	}
	if found == 0 {
		return fmt.Errorf("verify: trust: directory %s holds no certificate", path)
	}
	return nil
}

// readCertFile returns the certificates of a PEM file (CERTIFICATE blocks; other blocks such as
// keys are skipped) or of a file holding one DER certificate.
func readCertFile(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("verify: trust: %w", err)
	}
	certs, err := ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("verify: trust: %s: %w", path, err)
	}
	return certs, nil
}

// ParseCertificates returns the certificates of PEM data (CERTIFICATE blocks) or of one DER
// certificate.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, errors.New("neither PEM nor a DER certificate")
		}
		return []*x509.Certificate{c}, nil
	}
	var out []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && checkLink(c, c) == nil
}

// AddAnchors adds trust anchors.
func (t *Trust) AddAnchors(certs ...*x509.Certificate) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range certs {
		dup := false
		for _, a := range t.bySubj[string(c.RawSubject)] {
			if a.Equal(c) {
				dup = true
			}
		}
		if dup {
			continue
		}
		t.anchors = append(t.anchors, c)
		t.bySubj[string(c.RawSubject)] = append(t.bySubj[string(c.RawSubject)], c)
	}
}

// Anchors returns the trust anchors.
func (t *Trust) Anchors() []*x509.Certificate {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return append([]*x509.Certificate(nil), t.anchors...)
}

func (t *Trust) hasAnchors() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.anchors) > 0
}

func (t *Trust) anchorsFor(rawIssuer []byte) []*x509.Certificate {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.bySubj[string(rawIssuer)]
}

func (t *Trust) isAnchor(c *x509.Certificate) bool {
	for _, a := range t.anchorsFor(c.RawSubject) {
		if a.Equal(c) {
			return true
		}
	}
	return false
}

// Learn remembers a chain (leaf first) under the identifier of its leaf, and its issuing
// certificates by subject. The verifier calls it for every chain that validates; callers may
// preload chains of peers whose messages omit them.
func (t *Trust) Learn(chain []*x509.Certificate) {
	if len(chain) == 0 || chain[0] == nil {
		return
	}
	id := t.keyID(chain[0])
	t.mu.Lock()
	defer t.mu.Unlock()
	// A peer sends the same chain with every message (the same certificates, when the decoder
	// caches them): refresh its recency, as put would, without copying it again.
	if old, ok := t.chains.get(id); !ok || !slices.Equal(old, chain) {
		t.chains.put(id, append([]*x509.Certificate(nil), chain...))
	}
	for _, c := range chain[1:] {
		t.learnIntermediateLocked(c)
	}
}

func (t *Trust) learnCert(c *x509.Certificate) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.IsCA {
		t.learnIntermediateLocked(c)
	}
	if _, ok := t.chains.get(KeyID(c)); !ok {
		t.chains.put(KeyID(c), []*x509.Certificate{c})
	}
}

func (t *Trust) learnIntermediateLocked(c *x509.Certificate) {
	// The lookup borrows the subject's bytes (get keeps no key); only a new entry copies them.
	old, _ := t.intermediates.get(unsafe.String(unsafe.SliceData(c.RawSubject), len(c.RawSubject)))
	for _, o := range old {
		if o.Equal(c) {
			return
		}
	}
	k := string(c.RawSubject)
	if len(old) >= 4 { // a subject with many keys is odd; keep the newest few
		old = old[1:]
	}
	t.intermediates.put(k, append(append([]*x509.Certificate(nil), old...), c))
}

func (t *Trust) intermediatesFor(rawIssuer []byte) []*x509.Certificate {
	t.mu.Lock() // get touches the LRU order
	defer t.mu.Unlock()
	v, _ := t.intermediates.get(string(rawIssuer))
	return v
}

// Chain returns the chain remembered for an identifier (leaf first), or nil.
func (t *Trust) Chain(id string) []*x509.Certificate {
	if id == "" {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	v, _ := t.chains.get(id)
	return v
}

// LoadKeys reads MAC keys of SCE contexts from a file (see ParseKeys for the format).
func (t *Trust) LoadKeys(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("verify: keys: %w", err)
	}
	defer f.Close()
	return t.ParseKeys(f, file)
}

// ParseKeys reads MAC key lines. Blank lines and comments (from a word starting with '#' to the
// end of the line) are ignored. A line is either
//
//	<reqID-or-resID base64> <MK hex> [hmac-sha1|hmac-sha256]
//
// naming one side of the context (the key applies to any message whose reqID or resID equals
// it), or
//
//	<riID base64> <deaID base64> <MK hex> [hmac-sha1|hmac-sha256]
//
// naming the pair. The algorithm defaults to hmac-sha1; the xmldsig URIs are accepted too.
// name labels errors and findings (a file name).
func (t *Trust) ParseKeys(r io.Reader, name string) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var keys []MACKey
	for n := 1; sc.Scan(); n++ {
		// A comment starts with a field beginning with '#' (the xmldsig algorithm URIs hold '#').
		f := strings.Fields(sc.Text())
		for i, x := range f {
			if strings.HasPrefix(x, "#") {
				f = f[:i]
				break
			}
		}
		if len(f) == 0 {
			continue
		}
		where := fmt.Sprintf("%s:%d", name, n)
		k, err := parseKeyLine(f)
		if err != nil {
			return fmt.Errorf("verify: keys: %s: %w", where, err)
		}
		k.Source = where
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("verify: keys: %s: %w", name, err)
	}
	t.mu.Lock()
	t.keys = append(t.keys, keys...)
	t.mu.Unlock()
	return nil
}

func macAlg(s string) (string, bool) {
	switch strings.ToLower(s) {
	case MACHMACSHA1, decode.AlgHMAC1:
		return MACHMACSHA1, true
	case MACHMACSHA256, strings.ToLower(decode.AlgHMAC2):
		return MACHMACSHA256, true
	}
	return "", false
}

func parseKeyLine(f []string) (MACKey, error) {
	k := MACKey{Alg: MACHMACSHA1}
	if len(f) >= 3 {
		if alg, ok := macAlg(f[len(f)-1]); ok {
			k.Alg = alg
			f = f[:len(f)-1]
		}
	}
	var ids []string
	var hexKey string
	switch len(f) {
	case 2:
		ids, hexKey = f[:1], f[1]
	case 3:
		ids, hexKey = f[:2], f[2]
	default:
		return k, fmt.Errorf("want <id> <hex MK> [alg] or <riID> <deaID> <hex MK> [alg], got %d fields", len(f))
	}
	for _, id := range ids {
		if _, err := base64.StdEncoding.DecodeString(id); err != nil {
			return k, fmt.Errorf("identifier %q is not base64", id)
		}
	}
	mk, err := hex.DecodeString(hexKey)
	if err != nil || len(mk) == 0 {
		if _, ok := macAlg(hexKey); ok {
			return k, errors.New("missing MK before the algorithm")
		}
		return k, fmt.Errorf("MK %q is not hex", hexKey)
	}
	k.Key = mk
	if len(ids) == 1 {
		k.ID = ids[0]
	} else {
		k.RI, k.DEA = ids[0], ids[1]
	}
	return k, nil
}

// AddMACKey adds one MAC key. Alg may be a short name or an xmldsig URI; anything else
// (including "") means HMAC-SHA1.
func (t *Trust) AddMACKey(k MACKey) {
	if alg, ok := macAlg(k.Alg); ok {
		k.Alg = alg
	} else {
		k.Alg = MACHMACSHA1
	}
	t.mu.Lock()
	t.keys = append(t.keys, k)
	t.mu.Unlock()
}

// macKeysFor returns the candidate keys for a message with these identifiers, most specific
// first: pair keys matching (reqID, resID), then keys naming either side. A message with only a
// resID (a drmTrigger names the DEA, not the RI) matches pairs by their DEA side.
func (t *Trust) macKeysFor(reqID, resID string) []MACKey {
	t.mu.RLock()
	defer t.mu.RUnlock()
	type scored struct {
		k     MACKey
		score int
	}
	var c []scored
	for _, k := range t.keys {
		switch {
		case k.RI != "" && k.RI == reqID && k.DEA == resID:
			c = append(c, scored{k, 0})
		case k.RI != "" && reqID == "" && k.DEA == resID:
			c = append(c, scored{k, 1})
		case k.ID != "" && (k.ID == reqID || k.ID == resID):
			c = append(c, scored{k, 2})
		}
	}
	sort.SliceStable(c, func(i, j int) bool { return c[i].score < c[j].score })
	out := make([]MACKey, len(c))
	for i := range c {
		out[i] = c[i].k
	}
	return out
}
