package intercept

import (
	"bytes"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
)

// FuzzReplayRecording feeds arbitrary recordings to what `roapproxy open` does with a file
// someone sent: read the JSON lines back, analyse them again and store them. Whatever the file
// holds, that must not panic, and every flow read must be stored.
func FuzzReplayRecording(f *testing.F) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var rec bytes.Buffer
	r := captures.NewRecorder(&rec, 16)
	for i, x := range []struct{ ct, req, resp string }{
		{decode.MIMEPDU, `<roap:leaveDomainRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0"/>`, ldResp},
		{"application/ocsp-request", "\x30\x03\x0a\x01\x00", "\x30\x03\x0a\x01\x03"},
		{"text/plain", "", "not xml"},
	} {
		fl := &captures.Flow{ID: uint64(i + 1), Mode: "reverse", Method: "POST", URL: "http://ri.test/roap", Upstream: "ri.test",
			StatusCode: 200, Timings: captures.Timings{Received: t0, Responded: t0.Add(time.Millisecond), Done: t0.Add(2 * time.Millisecond)},
			Request:  captures.Half{Header: map[string][]string{"Content-Type": {x.ct}}, Body: []byte(x.req), Size: int64(len(x.req))},
			Response: captures.Half{Header: map[string][]string{"Content-Type": {x.ct}}, Body: []byte(x.resp), Size: int64(len(x.resp))}}
		r.Record(fl)
	}
	if err := r.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(rec.Bytes())
	f.Add([]byte(`{"id":1,"timings":{"received":"0001-01-01T00:00:00Z"},"error":"x","findings":[{"rule":"PROXY-UPSTREAM"}]}` + "\n{\"gap\":3}\n"))
	f.Add([]byte(`{"id":2,"request":{"header":{"Content-Type":["application/vnd.oma.drm.roap-trigger+wbxml"]}},"requestBody":"AwABag=="}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		flows, _ := captures.ReadRecords(bytes.NewReader(data))
		store := captures.NewStore(captures.StoreOptions{MaxFlows: max(len(flows), 1), MaxBytes: 1 << 40}, nil)
		n := Replay(flows, Config{Store: store})
		want := 0
		for _, fl := range flows {
			if fl != nil {
				want++
			}
		}
		if n != want {
			t.Fatalf("%d flows read, %d stored", want, n)
		}
	})
}
