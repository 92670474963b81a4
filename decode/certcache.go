package decode

import (
	"crypto/x509"
	"sync"
)

// certCache keeps parsed certificates by their DER bytes. Every message from a peer repeats the
// same chain, and parsing an RSA certificate costs more than decoding the whole XML message
// around it; a parsed x509.Certificate is never modified afterwards, so sharing it is safe. It is
// bounded (oldest first out) and safe for concurrent use.
type certCache struct {
	mu    sync.Mutex
	m     map[string]*x509.Certificate
	order []string
	max   int
}

func newCertCache(max int) *certCache {
	return &certCache{m: make(map[string]*x509.Certificate, max), max: max}
}

func (c *certCache) parse(der []byte) (*x509.Certificate, error) {
	if c == nil {
		return x509.ParseCertificate(der)
	}
	c.mu.Lock()
	cert, ok := c.m[string(der)] // no allocation for the lookup
	c.mu.Unlock()
	if ok {
		return cert, nil
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err // failures are not cached: junk must not evict real chains
	}
	k := string(der)
	c.mu.Lock()
	if _, dup := c.m[k]; !dup {
		c.m[k] = cert
		c.order = append(c.order, k)
		if len(c.order) > c.max {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.mu.Unlock()
	return cert, nil
}
