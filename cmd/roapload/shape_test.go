package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/sim"
	"github.com/roapproxy/roapproxy/verify"
)

// TestExchangeShapes checks each shape with the verifier itself: sizes near what the shape
// claims, every signature checked on the valid exchange, both corruptions caught, and, for the
// typical shape, that its chainless responses verify only once the prelude has taught the RI
// chain (so the load really exercises verification with a cached certificate).
func TestExchangeShapes(t *testing.T) {
	for _, c := range []struct {
		shape            string
		reqMin, reqMax   int
		respMin, respMax int
	}{
		{ShapeTypical, 3000, 4200, 4000, 5500},
		{ShapeFull, 3000, 4200, 8000, 11000},
	} {
		t.Run(c.shape, func(t *testing.T) {
			pl, err := newPayload(2, 2048, c.shape)
			if err != nil {
				t.Fatal(err)
			}
			x := pl.exchanges[0]
			if len(x.req) < c.reqMin || len(x.req) > c.reqMax || len(x.resp) < c.respMin || len(x.resp) > c.respMax {
				t.Errorf("request %d B, response %d B: outside %d–%d / %d–%d", len(x.req), len(x.resp), c.reqMin, c.reqMax, c.respMin, c.respMax)
			}
			hasChain := strings.Contains(string(x.resp), "certificateChain")
			if hasChain != (c.shape == ShapeFull) || (pl.prelude != nil) != (c.shape == ShapeTypical) {
				t.Errorf("response carries a chain: %v; prelude: %v", hasChain, pl.prelude != nil)
			}
			trust := verify.NewTrust()
			trust.AddAnchors(pl.pki.Root.Cert)
			v := verify.New(trust, verify.Options{})
			check := func(x exchange) (req, resp []string) {
				rq := decode.Decode(x.req, decode.Hint{ContentType: sim.CTROAP, Direction: decode.DirRequest})
				rs := decode.Decode(x.resp, decode.Hint{ContentType: sim.CTROAP, Direction: decode.DirResponse, Answers: rq.Kind})
				return rules(v.Check(rq, verify.Context{})), rules(v.Check(rs, verify.Context{Request: rq}))
			}
			sigRule := func(ids []string) bool {
				return slices.ContainsFunc(ids, func(id string) bool { return strings.HasPrefix(id, "ROAP-SIG") })
			}
			if c.shape == ShapeTypical {
				// Before the prelude the RI key is unknown: the response cannot be verified.
				if _, resp := check(x); !slices.Contains(resp, "ROAP-SIG-NOKEY") {
					t.Errorf("chainless response before the prelude: %v, want ROAP-SIG-NOKEY", resp)
				}
				if req, resp := check(*pl.prelude); sigRule(req) || sigRule(resp) {
					t.Errorf("prelude: request %v, response %v", req, resp)
				}
			}
			// Only the informational OCSP-COVERAGE (no OCSP response for the issuing CA) may remain.
			if req, resp := check(x); len(req) != 0 || slices.ContainsFunc(resp, func(id string) bool { return id != "OCSP-COVERAGE" }) {
				t.Errorf("valid exchange: request %v, response %v", req, resp)
			}
			if req, _ := check(pl.corruptReq); !slices.Contains(req, "ROAP-SIG") {
				t.Errorf("corrupted request signature: %v", req)
			}
			if _, resp := check(pl.corruptResp); !slices.Contains(resp, "ROAP-SIG") {
				t.Errorf("corrupted response signature: %v", resp)
			}
		})
	}
}

func rules(fs []decode.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule)
	}
	return out
}
