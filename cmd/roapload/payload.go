package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/sim"
)

// exchange is one ROAP round trip: a signed roRequest and the signed roResponse that answers it.
type exchange struct {
	req, resp []byte
}

// Exchange shapes (--exchange). Both are 2-pass RO acquisitions signed with RSA-PSS and fully
// verified; they differ in what the device and the RI already hold of each other.
const (
	// ShapeTypical is an RO acquisition after registration: the device holds the RI's
	// certificate and says so with PeerKeyIdentifier, so the RI sends no chain; the issuing CA
	// answers OCSP for its own certificates, so the OCSP response carries no certificates. The
	// device still sends its chain. About 3.7 KB up and 4.6 KB down: the issue's "3 KB ROAP
	// request and 5 KB response".
	ShapeTypical = "typical"
	// ShapeFull is first contact: the RI sends its chain and an OCSP response from a
	// delegated responder with the responder's certificates. About 3.4 KB up and 9.4 KB down.
	ShapeFull = "full"
)

// payload holds the bodies the load sends. Each variant has its own nonce, as real 2-pass
// exchanges do, so a verifier that correlates requests with responses sees distinct
// exchanges instead of one message replayed; signing a fresh pair per request would instead
// spend the client's share of the CPU on RSA.
type payload struct {
	pki       *sim.PKI
	rootPEM   []byte
	exchanges []exchange
	byRequest map[string][]byte // request body → its response
	// prelude, when set, goes through every proxy once before any load: a full-shape exchange
	// that delivers the RI chain, as registration does, so that the typical shape's chainless
	// responses verify against the certificate the proxy has seen.
	prelude *exchange
	// corruptReq and corruptResp are variants whose request, respectively response, signature
	// does not verify; the probe uses them to tell whether the proxy really verifies both.
	corruptReq, corruptResp exchange
}

// newPayload builds a test PKI and variants signed exchanges of the given shape: roRequest by
// the device key (RSA-PSS, SHA-1, salt 20) with its certificate chain; roResponse by the RI
// key with one protected RO and a real OCSP response for the RI certificate.
func newPayload(variants, bits int, shape string) (*payload, error) {
	if variants < 1 {
		return nil, fmt.Errorf("need at least one request variant, got %d", variants)
	}
	if shape != ShapeTypical && shape != ShapeFull {
		return nil, fmt.Errorf("exchange shape %q: want %s or %s", shape, ShapeTypical, ShapeFull)
	}
	p, err := sim.NewPKI(sim.PKIOptions{Bits: bits, Devices: 1, RIs: 1})
	if err != nil {
		return nil, fmt.Errorf("test PKI: %w", err)
	}
	ri, dev := p.RIs[0], p.Devices[0]
	delegated, err := sim.NewOCSPResponder(p).Respond(ri.Cert, nil)
	if err != nil {
		return nil, fmt.Errorf("OCSP response: %w", err)
	}
	// The same PKI without its delegated responder: the CA signs, and sends no certificates
	// because the device knows the CA from the chain.
	byCA := *p
	byCA.OCSP = nil
	caResponder := sim.NewOCSPResponder(&byCA)
	caResponder.SetFaults(sim.OCSPFaults{OmitResponderCert: true})
	caSigned, err := caResponder.Respond(ri.Cert, nil)
	if err != nil {
		return nil, fmt.Errorf("OCSP response by the CA: %w", err)
	}
	pl := &payload{
		pki:       p,
		rootPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Root.Cert.Raw}),
		byRequest: make(map[string][]byte, variants+3),
	}
	now := time.Now()
	build := func(i int, shape string, badReq, badResp bool) (exchange, error) {
		nonce := make([]byte, 20)
		if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
			return exchange{}, err
		}
		cek := make([]byte, 16)
		if _, err := io.ReadFull(rand.Reader, cek); err != nil {
			return exchange{}, err
		}
		n64 := base64.StdEncoding.EncodeToString(nonce)
		roID := fmt.Sprintf("REL-load-%d", i)
		rq := sim.RORequest{DeviceID: dev.ID(), RIID: ri.ID(), Nonce: n64, Time: now, ROIDs: []string{roID}, Chain: dev.ChainDER()}
		rs := sim.ROResponse{Status: sim.StatusSuccess, DeviceID: dev.ID(), RIID: ri.ID(), Nonce: n64}
		if shape == ShapeTypical {
			rq.PeerKeyID = ri.ID()
			rs.OCSP = [][]byte{caSigned}
		} else {
			rs.Chain, rs.OCSP = ri.ChainDER(), [][]byte{delegated}
		}
		req, err := sim.Sign(rq.Build(), dev.Key, badReq)
		if err != nil {
			return exchange{}, fmt.Errorf("signing roRequest: %w", err)
		}
		ro, err := sim.ProtectedRO(sim.ROParams{ID: roID, RIID: ri.ID(), ContentID: fmt.Sprintf("cid:load-%d@roapproxy.test", i),
			CEK: cek, DeviceID: dev.ID(), DeviceKey: &dev.Key.PublicKey})
		if err != nil {
			return exchange{}, fmt.Errorf("protected RO: %w", err)
		}
		rs.ROs = []*decode.Node{ro}
		resp, err := rs.Sign(ri.Key, badResp)
		if err != nil {
			return exchange{}, fmt.Errorf("signing roResponse: %w", err)
		}
		x := exchange{req: req, resp: resp}
		pl.byRequest[string(x.req)] = x.resp
		return x, nil
	}
	for i := 0; i < variants; i++ {
		x, err := build(i, shape, false, false)
		if err != nil {
			return nil, err
		}
		pl.exchanges = append(pl.exchanges, x)
	}
	if pl.corruptReq, err = build(variants, shape, true, false); err != nil {
		return nil, err
	}
	if pl.corruptResp, err = build(variants+1, shape, false, true); err != nil {
		return nil, err
	}
	if shape == ShapeTypical {
		x, err := build(variants+2, ShapeFull, false, false)
		if err != nil {
			return nil, err
		}
		pl.prelude = &x
	}
	return pl, nil
}

// upstream is the simulated RI: it answers each known request with its response. It runs in
// this process (startUpstream) or as a process of its own (startUpstreamProcess).
type upstream struct {
	srv  *http.Server
	proc *proxyProc
	URL  string
}

// pairHandler answers each known request body with its response and anything else with 400.
func pairHandler(byRequest map[string][]byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
			return
		}
		resp, ok := byRequest[string(body)]
		if !ok {
			// The proxy must forward the bytes untouched; anything else is an error of the run.
			http.Error(w, "unknown request body", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", sim.CTROAP)
		w.Header().Set("Content-Length", fmt.Sprint(len(resp)))
		_, _ = w.Write(resp)
	})
}

func startUpstream(pl *payload) (*upstream, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: pairHandler(pl.byRequest), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return &upstream{srv: srv, URL: "http://" + l.Addr().String()}, nil
}

// Close stops the upstream; for a process, it must exit cleanly.
func (u *upstream) Close() error {
	if u.proc != nil {
		return u.proc.stop()
	}
	return u.srv.Close()
}
