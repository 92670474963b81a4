package intercept_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/intercept"
	"github.com/roapproxy/roapproxy/sim"
	"github.com/roapproxy/roapproxy/verify"
)

// capturedRO runs the 2-pass RO scenario once and returns a roRequest and its roResponse as they
// went over the wire, plus the simulation (for its trust anchor).
func capturedRO(b *testing.B) (req, resp []byte, s *sim.Sim) {
	s, err := sim.Start(sim.Options{PKI: benchPKI(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	for _, sc := range s.Scenarios() {
		if sc.Name != sim.ScRO2Pass {
			continue
		}
		s.Observe(func(ex sim.Exchange) {
			if bytes.Contains(ex.Request, []byte("<roap:roRequest")) {
				req, resp = ex.Request, ex.Response
			}
		})
		if err := s.Run(context.Background(), sc); err != nil {
			b.Fatal(err)
		}
		s.Observe(nil)
	}
	if req == nil {
		b.Fatal("no roRequest captured")
	}
	return req, resp, s
}

func benchPKI(b *testing.B) *sim.PKI {
	p, err := sim.NewPKI(sim.PKIOptions{Bits: 2048})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkPipeline measures one ROAP exchange through a reverse listener of the proxy, against
// the same exchange sent directly, in one run: decode-only and full verification.
func BenchmarkPipeline(b *testing.B) {
	// As the proxy runs (TestMain poisons recycled trees instead).
	defer decode.SetRecycleMode(decode.SetRecycleMode(decode.RecycleOn))
	req, resp, s := capturedRO(b)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", decode.MIMEPDU)
		w.Write(resp)
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	run := func(b *testing.B, to string) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		b.SetBytes(int64(len(req) + len(resp)))
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r, err := c.Post(to+"/roap", decode.MIMEPDU, bytes.NewReader(req))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
		})
	}
	b.Run("direct", func(b *testing.B) { run(b, up.URL) })
	for _, verifying := range []bool{false, true} {
		name := "decode-only"
		if verifying {
			name = "verifying"
		}
		b.Run(name, func(b *testing.B) {
			store := captures.NewStore(captures.StoreOptions{}, captures.NewBus(1024))
			cfg := intercept.Config{Store: store, Decoder: decode.NewDecoder(decode.DefaultLimits)}
			if verifying {
				trust := verify.NewTrust()
				trust.AddAnchors(s.PKI.Root.Cert)
				cfg.Judge = intercept.NewVerifyJudge(verify.New(trust, verify.Options{}))
			}
			p := intercept.NewPipeline(cfg)
			defer p.Close()
			front := startReverse(b, p, target)
			defer front.Close()
			run(b, front.URL)
		})
	}
}
