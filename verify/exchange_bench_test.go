package verify

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/sim"
)

// roExchange is one 2-pass RO acquisition as the proxy sees it: a signed roRequest with the
// device chain and the signed roResponse (RI chain, a protected RO, an OCSP response) answering it.
type roExchange struct{ req, resp []byte }

type roExchangeSet struct {
	pki       *sim.PKI
	exchanges []roExchange
}

var (
	roExOnce sync.Once
	roExVal  *roExchangeSet
	roExErr  error
)

// roExchanges builds, once, exchanges like those cmd/roapload sends (2048-bit PKI), each with
// its own nonce so the tracker sees distinct exchanges rather than one replayed.
func roExchanges(b testing.TB) *roExchangeSet {
	b.Helper()
	roExOnce.Do(func() {
		const variants = 16
		p, err := sim.NewPKI(sim.PKIOptions{Bits: 2048, Now: t0, Devices: 1, RIs: 1})
		if err != nil {
			roExErr = err
			return
		}
		ri, dev := p.RIs[0], p.Devices[0]
		ocsp, err := responder(p).Respond(ri.Cert, nil)
		if err != nil {
			roExErr = err
			return
		}
		set := &roExchangeSet{pki: p}
		for i := 0; i < variants; i++ {
			nonce, cek := make([]byte, 20), make([]byte, 16)
			if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
				roExErr = err
				return
			}
			if _, err := io.ReadFull(rand.Reader, cek); err != nil {
				roExErr = err
				return
			}
			n64 := base64.StdEncoding.EncodeToString(nonce)
			roID := fmt.Sprintf("REL-load-%d", i)
			rq := sim.RORequest{DeviceID: dev.ID(), RIID: ri.ID(), Nonce: n64, Time: t0, ROIDs: []string{roID}, Chain: dev.ChainDER()}
			req, err := sim.Sign(rq.Build(), dev.Key, false)
			if err != nil {
				roExErr = err
				return
			}
			ro, err := sim.ProtectedRO(sim.ROParams{ID: roID, RIID: ri.ID(), ContentID: fmt.Sprintf("cid:load-%d@roapproxy.test", i),
				CEK: cek, DeviceID: dev.ID(), DeviceKey: &dev.Key.PublicKey})
			if err != nil {
				roExErr = err
				return
			}
			rs := sim.ROResponse{Status: sim.StatusSuccess, DeviceID: dev.ID(), RIID: ri.ID(), Nonce: n64,
				ROs: []*decode.Node{ro}, Chain: ri.ChainDER(), OCSP: [][]byte{ocsp}}
			resp, err := rs.Sign(ri.Key, false)
			if err != nil {
				roExErr = err
				return
			}
			set.exchanges = append(set.exchanges, roExchange{req: req, resp: resp})
		}
		roExVal = set
	})
	if roExErr != nil {
		b.Fatal(roExErr)
	}
	return roExVal
}

var (
	roReqHint  = decode.Hint{ContentType: decode.MIMEPDU, Direction: decode.DirRequest}
	roRespHint = decode.Hint{ContentType: decode.MIMEPDU, Direction: decode.DirResponse, Answers: "roRequest"}
)

// proxyExchange does what the verifying proxy does with one exchange: each body decoded by a
// long-lived Decoder, then observed by the Verifier in wire order.
func proxyExchange(dec *decode.Decoder, v *Verifier, x roExchange, id string, at time.Time) (req, resp Result) {
	o := Observation{Leg: LegDeviceRI, Exchange: id, Client: "127.0.0.1:50000", Server: "127.0.0.1:8080", URL: "http://127.0.0.1:8080/roap"}
	o.Message, o.Time, o.Direction = dec.Decode(x.req, roReqHint), at, decode.DirRequest
	req = v.Track(o)
	o.Message, o.Time, o.Direction = dec.Decode(x.resp, roRespHint), at.Add(time.Millisecond), decode.DirResponse
	resp = v.Track(o)
	return req, resp
}

// BenchmarkProxyROExchange is the proxy's per-exchange analysis cost: a 2048-bit roRequest and
// roResponse decoded and tracked (two RSA-PSS checks, both chains walked, the OCSP response
// judged, the cross-message rules), in steady state (chains and OCSP seen before).
func BenchmarkProxyROExchange(b *testing.B) {
	set := roExchanges(b)
	dec := decode.NewDecoder(decode.DefaultLimits)
	v := newVerifier(set.pki)
	at := t0.Add(time.Minute)
	for i, x := range set.exchanges {
		req, resp := proxyExchange(dec, v, x, "warm"+strconv.Itoa(i), at)
		noErrors(b, req.Findings)
		noErrors(b, resp.Findings)
	}
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x := set.exchanges[i%len(set.exchanges)]
		proxyExchange(dec, v, x, strconv.Itoa(i), at)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exch/s")
	reportCPU(b, cpu0, cpuOK)
}

// reportCPU reports the process CPU time per operation since cpu0 (GC included) as cpu-ns/op.
func reportCPU(b *testing.B, cpu0 time.Duration, ok bool) {
	if cpu1, ok1 := processCPU(); ok && ok1 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkProxyRODecode is the decoding share of BenchmarkProxyROExchange.
func BenchmarkProxyRODecode(b *testing.B) {
	set := roExchanges(b)
	dec := decode.NewDecoder(decode.DefaultLimits)
	for _, c := range []struct {
		name    string
		hint    decode.Hint
		body    func(roExchange) []byte
		recycle bool // as the proxy does once an exchange is judged
	}{
		{"roRequest", roReqHint, func(x roExchange) []byte { return x.req }, false},
		{"roResponse", roRespHint, func(x roExchange) []byte { return x.resp }, false},
		{"roRequest/recycled", roReqHint, func(x roExchange) []byte { return x.req }, true},
		{"roResponse/recycled", roRespHint, func(x roExchange) []byte { return x.resp }, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			body := c.body(set.exchanges[0])
			if m := dec.Decode(body, c.hint); m.Worst() == decode.SevError {
				b.Fatalf("%s: %v", m.Kind, m.Findings)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			cpu0, cpuOK := processCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m := dec.Decode(body, c.hint)
				if c.recycle {
					decode.Recycle(m)
				}
			}
			b.StopTimer()
			reportCPU(b, cpu0, cpuOK)
		})
	}
}

// BenchmarkProxyRORSA is the fixed part of BenchmarkProxyROExchange: the two RSA-PSS signature
// checks alone (digests computed beforehand). The exchange minus this is what the rest of
// decoding and verifying costs.
func BenchmarkProxyRORSA(b *testing.B) {
	set := roExchanges(b)
	type check struct {
		pub    *rsa.PublicKey
		digest []byte
		sig    []byte
	}
	var checks []check
	x := set.exchanges[0]
	for _, c := range []struct {
		body []byte
		hint decode.Hint
		key  *rsa.PublicKey
	}{{x.req, roReqHint, &set.pki.Devices[0].Key.PublicKey}, {x.resp, roRespHint, &set.pki.RIs[0].Key.PublicKey}} {
		m := decode.Decode(c.body, c.hint)
		sig, ok := b64(topChild(m.Root, "signature").TextContent())
		if !ok {
			b.Fatal("no signature")
		}
		h := sha1.New()
		for _, p := range m.SignedParts() {
			h.Write(p)
		}
		checks = append(checks, check{c.key, h.Sum(nil), sig})
	}
	opts := &rsa.PSSOptions{SaltLength: 20, Hash: crypto.SHA1}
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, c := range checks {
			if err := rsa.VerifyPSS(c.pub, crypto.SHA1, c.digest, c.sig, opts); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	reportCPU(b, cpu0, cpuOK)
}

// The RI chain's issuing CA has no OCSP status in these exchanges: every response says so, with
// the CA's name, the first time and when the text comes from the verifier's memory.
func TestOCSPCoverageNamesTheCertificate(t *testing.T) {
	set := roExchanges(t)
	dec := decode.NewDecoder(decode.DefaultLimits)
	v := newVerifier(set.pki)
	ca := set.pki.RIs[0].Chain[1]
	want := "no OCSP response covers RI chain certificate " + strconv.Quote(ca.Subject.CommonName) + " (devices check only the leaf)"
	for i, x := range set.exchanges[:3] {
		_, resp := proxyExchange(dec, v, x, "cov"+strconv.Itoa(i), t0.Add(time.Minute))
		var got []decode.Finding
		for _, f := range resp.Findings {
			if f.Rule == RuleOCSPCoverage.ID {
				got = append(got, f)
			}
		}
		if len(got) != 1 || got[0].Message != want || got[0].Severity != decode.SevInfo || got[0].Path != "/roResponse/ocspResponse" || got[0].Ref != RuleOCSPCoverage.Ref {
			t.Fatalf("exchange %d: coverage findings %+v, want one saying %q", i, got, want)
		}
	}
}
