package decode

import (
	"crypto/x509"
	"strings"
	"sync"
)

// certCache keeps parsed certificates (with their DER) by the base64 text they arrived as. Every message from a peer repeats the
// same chain, and parsing an RSA certificate costs more than decoding the whole XML message
// around it; a parsed x509.Certificate is never modified afterwards, so sharing it is safe. It is
// bounded (oldest first out) and safe for concurrent use.
type certCache struct {
	mu    sync.Mutex
	m     map[string]certEntry
	order []string
	max   int
}

type certEntry struct {
	cert *x509.Certificate
	der  []byte
}

func newCertCache(max int) *certCache {
	return &certCache{m: make(map[string]certEntry, max), max: max}
}

// parse returns the certificate whose base64 text is b64. Keying by the text skips the base64
// decoding too for a certificate seen before; a key is cloned, so it never pins a message body.
func (c *certCache) parse(b64 string) (*x509.Certificate, []byte, error) {
	if c != nil {
		c.mu.Lock()
		e, ok := c.m[b64]
		c.mu.Unlock()
		if ok {
			return e.cert, e.der, nil
		}
	}
	der, err := DecodeBase64(b64)
	if err != nil || len(der) == 0 {
		return nil, nil, errBase64{err}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil || c == nil {
		return cert, der, err // failures are not cached: junk must not evict real chains
	}
	k := strings.Clone(b64)
	c.mu.Lock()
	if _, dup := c.m[k]; !dup {
		c.m[k] = certEntry{cert, der}
		c.order = append(c.order, k)
		if len(c.order) > c.max {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.mu.Unlock()
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
