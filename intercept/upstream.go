package intercept

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/url"
	"sync"
	"time"
)

// upstreamPool keeps idle keep-alive connections to one upstream, most recently used first: the
// one used last is the one least likely to have been closed by the server meanwhile.
type upstreamPool struct {
	addr        string      // host:port
	tls         *tls.Config // nil for plain HTTP
	dialTimeout time.Duration
	idleTimeout time.Duration
	maxIdle     int

	mu     sync.Mutex
	idle   []*upConn
	closed bool
}

// upConn is one connection to the upstream.
type upConn struct {
	c         net.Conn
	r         *bufio.Reader
	idleSince time.Time
	reused    bool // it carried an exchange before this one
}

func newUpstreamPool(target *url.URL, o ReverseOptions) *upstreamPool {
	p := &upstreamPool{addr: target.Host, dialTimeout: o.DialTimeout, idleTimeout: o.IdleUpstream, maxIdle: o.MaxIdleUpstream}
	port := "80"
	if target.Scheme == "https" {
		port = "443"
		p.tls = o.TLS.clientConfig()
		p.tls.ServerName = target.Hostname()
	}
	if target.Port() == "" {
		p.addr = net.JoinHostPort(target.Hostname(), port)
	}
	return p
}

// get returns an idle connection, or dials a new one.
func (p *upstreamPool) get(ctx context.Context) (*upConn, error) {
	now := time.Now()
	p.mu.Lock()
	for len(p.idle) > 0 {
		u := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(u.idleSince) < p.idleTimeout {
			p.mu.Unlock()
			u.reused = true
			return u, nil
		}
		u.c.Close()
	}
	p.mu.Unlock()
	return p.dial(ctx)
}

func (p *upstreamPool) dial(ctx context.Context) (*upConn, error) {
	d := net.Dialer{Timeout: p.dialTimeout, KeepAlive: 30 * time.Second}
	var c net.Conn
	var err error
	if p.tls != nil {
		td := tls.Dialer{NetDialer: &d, Config: p.tls}
		c, err = td.DialContext(ctx, "tcp", p.addr)
	} else {
		c, err = d.DialContext(ctx, "tcp", p.addr)
	}
	if err != nil {
		return nil, err
	}
	return &upConn{c: c, r: bufio.NewReaderSize(c, 16<<10)}, nil
}

// put returns a connection whose last exchange ended cleanly.
func (p *upstreamPool) put(u *upConn) {
	_ = u.c.SetDeadline(time.Time{})
	u.idleSince = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.maxIdle {
		p.mu.Unlock()
		u.c.Close()
		return
	}
	p.idle = append(p.idle, u)
	p.mu.Unlock()
}

// close closes the idle connections and every connection put back afterwards.
func (p *upstreamPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, u := range idle {
		u.c.Close()
	}
}
