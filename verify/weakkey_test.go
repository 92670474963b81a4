//go:debug rsa1024min=0

package verify

// This directive is honoured for the test binary of this package (checked with Go 1.26: without
// it, generating the 512-bit key below fails with "crypto/rsa: 512-bit keys are insecure").
// Keys of 1024 bits need nothing special. It also makes the verifier able to check signatures by
// such keys here, which the proxy binary (built without it) reports as unverifiable instead.

import (
	"strings"
	"testing"

	"encoding/asn1"
	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/sim"
)

func TestKeysUnder1024Bits(t *testing.T) {
	p := testPKI(t)
	weak, err := p.NewLeaf("ri-512", sim.LeafOptions{KeyPurposes: []asn1.ObjectIdentifier{sim.OIDKPRightsIssuer}, Bits: 512})
	if err != nil {
		t.Fatalf("a 512-bit key needs GODEBUG=rsa1024min=0: %v", err)
	}
	s := tdr{ri: weak, dev: p.Devices[0].ID(), tdid: "td", nonce: nonce("w"), qty: 1}
	fs := newVerifier(p).Check(decHint(s.build(t, signPSS20), "tokenRequest", false), Context{Time: t0})
	noErrors(t, fs)
	want(t, fs, "ROAP-SIG-WEAKKEY", decode.SevWarning)
	if f := find(fs, "CHAIN-WEAK"); f == nil || !strings.Contains(f.Message, "512-bit") {
		t.Fatalf("CHAIN-WEAK should name the 512-bit key:%s", dump(fs))
	}
}
