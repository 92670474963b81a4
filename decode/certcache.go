package decode

import (
	"crypto/x509"
	"strings"
	"sync"
)

// maxCachedText is the longest base64 text a cache keeps. Real certificates and OCSP responses
// are a few kilobytes; without a cap a hostile peer could pin its largest bodies in every slot.
const maxCachedText = 16 << 10

// textCache maps the exact base64 text of a field to what decoding it gave. Keys are the text
// itself, so a hit can only be the same bytes (no hash collision can return another value). It
// is bounded (oldest first out) and safe for concurrent use.
type textCache[V any] struct {
	mu    sync.Mutex
	m     map[string]V
	order []string
	max   int
}

func newTextCache[V any](max int) *textCache[V] {
	return &textCache[V]{m: make(map[string]V, max), max: max}
}

func (c *textCache[V]) get(text string) (V, bool) {
	if c == nil {
		var zero V
		return zero, false
	}
	c.mu.Lock()
	v, ok := c.m[text]
	c.mu.Unlock()
	return v, ok
}

// put remembers v for text. The key is cloned, so it never pins a message body.
func (c *textCache[V]) put(text string, v V) {
	if c == nil || len(text) > maxCachedText {
		return
	}
	k := strings.Clone(text)
	c.mu.Lock()
	if _, dup := c.m[k]; !dup {
		c.m[k] = v
		c.order = append(c.order, k)
		if len(c.order) > c.max {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.mu.Unlock()
}

// certCache keeps parsed certificates (with their DER) by the base64 text they arrived as. Every
// message from a peer repeats the same chain, and parsing an RSA certificate costs more than
// decoding the whole XML message around it; a parsed x509.Certificate is never modified
// afterwards, so sharing it is safe.
type certCache = textCache[certEntry]

type certEntry struct {
	cert *x509.Certificate
	der  []byte
}

// parseCert returns the certificate whose base64 text is b64, from c when c has seen the text.
// Keying by the text skips the base64 decoding too for a certificate seen before.
func parseCert(c *certCache, b64 string) (*x509.Certificate, []byte, error) {
	if e, ok := c.get(b64); ok {
		return e.cert, e.der, nil
	}
	der, err := DecodeBase64(b64)
	if err != nil || len(der) == 0 {
		return nil, nil, errBase64{err}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return cert, der, err // failures are not cached: junk must not evict real chains
	}
	c.put(b64, certEntry{cert, der})
	return cert, der, nil
}

// errBase64 marks a certificate whose text is not base64 (as opposed to DER that does not parse).
type errBase64 struct{ err error }

func (e errBase64) Error() string {
	if e.err == nil {
		return "empty"
	}
	return e.err.Error()
}

// ocspCache keeps the DER of OCSP responses by the base64 text they arrived as: an RI repeats
// the same response in every message until it refreshes it. Only texts that decoded to a DER
// OCSPResponse are kept, so a hit needs no further check.
type ocspCache = textCache[[]byte]
