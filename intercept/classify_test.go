package intercept

import (
	"net/http"
	"testing"

	"github.com/roapproxy/roapproxy/captures"
)

func TestClassifyFindsOCSPInAnyCase(t *testing.T) {
	for ct, want := range map[string]captures.Leg{
		"application/ocsp-response": captures.LegOCSP,
		"Application/OCSP-Request":  captures.LegOCSP,
		"text/plain; x=oCsP":        captures.LegOCSP,
		"application/ocs":           captures.LegOther,
		"application/xml":           captures.LegOther,
	} {
		f := &captures.Flow{Response: captures.Half{Header: http.Header{"Content-Type": {ct}}}}
		if got := Classify(f); got != want {
			t.Errorf("%q: %s, want %s", ct, got, want)
		}
	}
}
