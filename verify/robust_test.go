package verify

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/roapproxy/roapproxy/decode"
)

// noInternal fails when the verifier reported a bug of its own (a recovered panic).
func noInternal(t *testing.T, what string, fs []decode.Finding) {
	t.Helper()
	if f := find(fs, "VERIFY-INTERNAL"); f != nil {
		t.Fatalf("%s: %s", what, f.Message)
	}
}

// TestSharedVectors runs the shared sample messages (dummy signatures, certificates and MACs,
// broken ones under negative/) through Check and the Tracker: findings, never a crash.
func TestSharedVectors(t *testing.T) {
	files, _ := filepath.Glob("/work/shared/vectors/*.xml")
	neg, _ := filepath.Glob("/work/shared/vectors/negative/*.xml")
	files = append(files, neg...)
	if len(files) == 0 {
		t.Skip("shared vectors not present")
	}
	p := testPKI(t)
	v := newVerifier(p)
	v.Trust().AddMACKey(MACKey{ID: "YbPfzWVQ34dBfMns1QzX5L33p88=", Key: []byte("k")})
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := decode.Decode(b, decode.Hint{})
		noInternal(t, f, v.Check(m, Context{Time: t0}))
		noInternal(t, f, v.Observe(Observation{Message: m, Time: t0, Exchange: fmt.Sprint(i % 3)}))
	}
}

// TestMutatedMessages truncates and corrupts real, signed messages at many places: the verifier
// must report, never panic.
func TestMutatedMessages(t *testing.T) {
	p := testPKI(t)
	rig, _ := newLeaveRig(t)
	der, err := responder(p).Respond(p.RIs[0].Cert, []byte("nonce-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	ldrBody := ldr{dev: p.Devices[1], riID: rig.riID, nonce: nonce("m"), domain: rig.dom, noChain: true}.build(t)
	reg := register(t, p, p.Devices[0], p.RIs[0], "S-mut", nil)
	bodies := [][]byte{
		tdr{ri: p.RIs[0], dev: p.Devices[0].ID(), tdid: "td", nonce: nonce("n"), qty: 1, ocsp: [][]byte{der}}.build(t, signPSS20),
		rdpRequest(rig.riID, rig.dea, nonce("g"), ldrBody, p.Devices[1], rig.mk),
		rdpResponse("Success", rig.riID, rig.dea, nonce("g"), rig.dom, p.Devices[1].ID(), rig.mk),
		drmTrigger(rig.dea, nonce("t"), rig.dom, []string{p.Devices[0].ID(), p.Devices[1].ID()}, rig.mk),
		roapTrigger("leaveDomain", rig.riID, nonce("x"), rig.dom),
		reg.hello, reg.riHello, reg.regReq, reg.regResp,
	}
	rnd := rand.New(rand.NewSource(1))
	v := newVerifier(p)
	v.Trust().AddMACKey(MACKey{RI: rig.riID, DEA: rig.dea, Key: rig.mk})
	n := 0
	for bi, body := range bodies {
		step := len(body)/40 + 1
		for cut := 0; cut < len(body); cut += step {
			variants := [][]byte{body[:cut]}
			flipped := bytes.Clone(body)
			flipped[cut] ^= byte(1 + rnd.Intn(255))
			variants = append(variants, flipped)
			for _, b := range variants {
				m := decode.Decode(b, decode.Hint{})
				noInternal(t, fmt.Sprintf("body %d cut %d", bi, cut), v.Check(m, Context{Time: t0}))
				ex := fmt.Sprint("x", n%5)
				noInternal(t, fmt.Sprintf("body %d cut %d", bi, cut), v.Observe(Observation{Message: m, Time: t0, Exchange: ex}))
				n++
			}
		}
	}
	if n < 200 {
		t.Fatalf("only %d mutations", n)
	}
}
