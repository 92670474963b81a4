package captures

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
	"unsafe"

	"github.com/roapproxy/roapproxy/decode"
)

func testFlow(i int, body string) *Flow {
	req := []byte(body)
	m := decode.Decode(req, decode.Hint{ContentType: decode.MIMEPDU, Direction: decode.DirRequest})
	return &Flow{Mode: "reverse", Leg: LegDeviceRI, Method: "POST", URL: fmt.Sprintf("http://ri.test/roap?i=%d", i),
		Request:  Half{Header: http.Header{"Content-Type": {decode.MIMEPDU}}, Body: req, Size: int64(len(req)), Message: m},
		Timings:  Timings{Received: time.Unix(1700000000, 0), Done: time.Unix(1700000000, 5e6)},
		Findings: []decode.Finding{}}
}

func TestBusNeverBlocksAndCutsOffLaggards(t *testing.T) {
	b := NewBus(16)
	slow, _, _ := b.Subscribe(0, 2, nil)
	fast, _, _ := b.Subscribe(0, 100, nil)
	for i := 0; i < 50; i++ {
		b.Publish(Event{Type: EventFlow, FlowID: uint64(i)})
	}
	// The slow subscriber read nothing: its queue of 2 overflowed on the third publish.
	got := 0
	for range slow.C {
		got++
	}
	if got != 2 || !slow.Lagged() {
		t.Fatalf("slow subscriber: got %d events, lagged=%v; want 2 and cut off", got, slow.Lagged())
	}
	if len(fast.C) != 50 || fast.Lagged() {
		t.Fatalf("fast subscriber has %d queued, lagged=%v; want 50, not lagged", len(fast.C), fast.Lagged())
	}
	fast.Close()
	if b.Last() != 50 {
		t.Fatalf("Last = %d", b.Last())
	}
}

func TestBusCatchUpFromSequence(t *testing.T) {
	b := NewBus(8)
	for i := 1; i <= 20; i++ {
		b.Publish(Event{Type: EventFlow, FlowID: uint64(i)})
	}
	_, backlog, complete := b.Subscribe(15, 10, nil)
	if !complete || len(backlog) != 5 || backlog[0].Seq != 16 || backlog[4].Seq != 20 {
		t.Fatalf("catch-up from 15: complete=%v backlog=%v", complete, backlog)
	}
	// 20 events, ring of 8: events up to 12 are gone, so resuming after 5 is incomplete.
	_, _, complete = b.Subscribe(5, 10, nil)
	if complete {
		t.Fatal("resuming past the ring must report incomplete so the client resyncs")
	}
	_, backlog, complete = b.Subscribe(12, 10, nil)
	if !complete || len(backlog) != 8 {
		t.Fatalf("resume at the ring's edge: complete=%v len=%d", complete, len(backlog))
	}
	// A sequence number from the future means the server restarted: resync.
	if _, _, complete = b.Subscribe(99, 10, nil); complete {
		t.Fatal("resuming after a sequence the bus never reached must report incomplete")
	}
	// A filter applies to the backlog and to live events.
	s, backlog, _ := b.Subscribe(16, 10, func(e *Event) bool { return e.FlowID%2 == 0 })
	if len(backlog) != 2 {
		t.Fatalf("filtered backlog %v", backlog)
	}
	b.Publish(Event{FlowID: 21})
	b.Publish(Event{FlowID: 22})
	if e := <-s.C; e.FlowID != 22 {
		t.Fatalf("filtered live event %+v", e)
	}
}

func TestStoreEvictsByCountAndBytes(t *testing.T) {
	bus := NewBus(64)
	s := NewStore(StoreOptions{MaxFlows: 3, MaxBytes: 1 << 20}, bus)
	for i := 0; i < 5; i++ {
		s.Add(testFlow(i, "<x/>"))
	}
	if s.Len() != 3 {
		t.Fatalf("len %d", s.Len())
	}
	if _, ok := s.Get(2); ok {
		t.Fatal("flow 2 should have been evicted")
	}
	if f, ok := s.Get(5); !ok || f.ID != 5 {
		t.Fatal("newest flow missing")
	}
	one := footprint(testFlow(0, string(bytes.Repeat([]byte("a"), 4000))))
	s2 := NewStore(StoreOptions{MaxFlows: 100, MaxBytes: 2*one + one/2}, nil)
	for i := 0; i < 10; i++ {
		s2.Add(testFlow(i, string(bytes.Repeat([]byte("a"), 4000))))
	}
	if s2.Len() != 2 {
		t.Fatalf("byte-bounded store holds %d flows under a cap of 2.5 flows; want 2", s2.Len())
	}
	if bus.Last() != 5 {
		t.Fatalf("bus saw %d events", bus.Last())
	}
}

func TestStoreFilterAndPaging(t *testing.T) {
	s := NewStore(StoreOptions{}, NewBus(8))
	ok := `<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success"><nonce>T1Sq3LQMzhRwj5eASuy5LA==</nonce><domainID>ACMEUSERDOM42001</domainID></roap:leaveDomainResponse>`
	bad := `<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="DomainAccessDenied"></roap:leaveDomainResponse>`
	for i := 0; i < 6; i++ {
		body := ok
		if i%3 == 0 {
			body = bad
		}
		s.Add(testFlow(i, body))
	}
	p := s.List(Filter{Severity: decode.SevError}, 0, 0)
	if p.Total != 2 {
		t.Fatalf("error filter total %d, want 2", p.Total)
	}
	p = s.List(Filter{Text: "DAD-SCOPE"}, 0, 0)
	if p.Total != 2 {
		t.Fatalf("free text over findings: total %d", p.Total)
	}
	p = s.List(Filter{}, 2, 3)
	if p.Total != 6 || len(p.Flows) != 3 || p.Flows[0].ID != 3 {
		t.Fatalf("paging: %+v", p)
	}
	if p.Last != 6 {
		t.Fatalf("page lastSeq %d", p.Last)
	}
}

func TestStoreAddFindingsPublishes(t *testing.T) {
	bus := NewBus(8)
	s := NewStore(StoreOptions{}, bus)
	id := s.Add(testFlow(0, "<x/>"))
	sub, _, _ := bus.Subscribe(bus.Last(), 4, nil)
	late := decode.Finding{Rule: "X", Severity: decode.SevWarning, Message: "late"}
	if !s.AddFindings(id, []decode.Finding{late}) {
		t.Fatal("AddFindings on a held flow")
	}
	e := <-sub.C
	if e.Type != EventFindings || e.FlowID != id {
		t.Fatalf("event %+v", e)
	}
	if p := s.List(Filter{Severity: decode.SevWarning}, 0, 0); p.Total != 1 {
		t.Fatal("summary not updated with the late finding")
	}
	if s.AddFindings(999, []decode.Finding{late}) {
		t.Fatal("AddFindings on a missing flow must report false")
	}
}

func TestRecorderRoundTripAndHAR(t *testing.T) {
	var buf bytes.Buffer
	r := NewRecorder(&buf, 16)
	f := testFlow(1, `<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success"></roap:leaveDomainResponse>`)
	f.Response = Half{Header: http.Header{"Content-Type": {"application/octet-stream"}}, Body: []byte{0, 1, 2, 0xff}, Size: 4}
	r.Record(f)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	flows, err := ReadRecords(&buf)
	if err != nil || len(flows) != 1 {
		t.Fatalf("read back: %v, %d flows", err, len(flows))
	}
	if !bytes.Equal(flows[0].Request.Body, f.Request.Body) || !bytes.Equal(flows[0].Response.Body, f.Response.Body) {
		t.Fatal("bodies did not survive the recording byte for byte")
	}
	if flows[0].Request.Message.Kind != "leaveDomainResponse" {
		t.Fatalf("decoded message lost: %+v", flows[0].Request.Message)
	}
	var har bytes.Buffer
	if err := WriteHAR(&har, flows, "test"); err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Log struct {
			Entries []struct {
				Response struct {
					Content struct{ Text, Encoding string }
				}
				Extra map[string]any `json:"_roapproxy"`
			}
		}
	}
	if err := json.Unmarshal(har.Bytes(), &parsed); err != nil || len(parsed.Log.Entries) != 1 {
		t.Fatalf("HAR: %v", err)
	}
	if parsed.Log.Entries[0].Response.Content.Encoding != "base64" {
		t.Fatal("binary response body must be base64 in HAR")
	}
	if parsed.Log.Entries[0].Extra["reqKind"] != "leaveDomainResponse" {
		t.Fatalf("HAR extra %v", parsed.Log.Entries[0].Extra)
	}
}

func TestLightenReleasesTheBodyCopy(t *testing.T) {
	body := []byte(`<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success"><nonce>T1Sq3LQMzhRwj5eASuy5LA==</nonce><domainID>ACMEUSERDOM42001</domainID></roap:leaveDomainResponse>`)
	m := decode.Decode(body, decode.Hint{})
	// The decoder's values are slices of one string copy of the body; the status value's offset
	// in the body locates that copy.
	lo := uintptr(unsafe.Pointer(unsafe.StringData(m.Status))) - uintptr(bytes.Index(body, []byte("Success")))
	hi := lo + uintptr(len(body))
	inCopy := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return len(s) > 0 && p >= lo && p < hi
	}
	if !inCopy(m.IDs["domainID"]) {
		t.Skip("the decoder no longer slices one body copy; nothing to release")
	}
	Lighten(m)
	if m.Doc != nil || m.Root != nil {
		t.Fatal("parse tree kept")
	}
	kept := []string{m.Status, m.Namespace, m.Kind, m.Variant}
	for k, v := range m.IDs {
		kept = append(kept, k, v)
	}
	for _, f := range m.Findings {
		kept = append(kept, f.Message, f.Path)
	}
	for _, s := range kept {
		if inCopy(s) {
			t.Fatalf("%q still points into the decoder's copy of the body", s)
		}
	}
	if m.Status != "Success" || m.IDs["domainID"] != "ACMEUSERDOM42001" {
		t.Fatal("values changed")
	}
}

// The bus keeps summaries long after the store evicted their flows. A summary string that
// pointed into a body would keep the whole body alive with it (once measured: RSS 142 MB
// instead of 88 MB under load), so everything a published summary holds is its own copy.
func TestPublishedSummariesDoNotPinBodies(t *testing.T) {
	body := []byte(`<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success"><nonce>T1Sq3LQMzhRwj5eASuy5LA==</nonce><domainID>ACMEUSERDOM42001</domainID></roap:leaveDomainResponse>`)
	in := func(s string) bool {
		p, lo := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.SliceData(body)))
		return len(s) > 0 && p >= lo && p < lo+uintptr(len(body))
	}
	m := decode.Decode(body, decode.Hint{})
	if !in(m.IDs["domainID"]) {
		t.Skip("the decoder no longer slices the body it was given")
	}
	bus := NewBus(16)
	sub, _, _ := bus.Subscribe(0, 16, nil)
	NewStore(StoreOptions{}, bus).Add(&Flow{Response: Half{Body: body, Message: m}})
	ev := <-sub.C
	if ev.Flow == nil {
		t.Fatalf("event %+v", ev)
	}
	s := ev.Flow
	if s.RespKind != "leaveDomainResponse" || s.IDs["domainID"] != "ACMEUSERDOM42001" {
		t.Fatalf("summary %+v", s)
	}
	strs := []string{s.RespKind, s.ReqKind, s.Variant, s.Status, s.Error}
	for k, v := range s.IDs {
		strs = append(strs, k, v)
	}
	strs = append(strs, s.Correlation...)
	strs = append(strs, s.Rules...)
	strs = append(strs, s.Findings...)
	for _, x := range strs {
		if in(x) {
			t.Fatalf("summary string %q points into the flow's body", x)
		}
	}
}

// A lightened message keeps its strings in one buffer of its own.
func TestLightenPacksTheStringsItKeeps(t *testing.T) {
	body := []byte(`<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success"><nonce>T1Sq3LQMzhRwj5eASuy5LA==</nonce><domainID>ACMEUSERDOM42001</domainID></roap:leaveDomainResponse>`)
	m := decode.Decode(body, decode.Hint{})
	m.Add(decode.Finding{Rule: "X", Severity: decode.SevInfo, Message: "a finding", Path: "/leaveDomainResponse/nonce"})
	want := map[string]string{}
	for k, v := range m.IDs {
		want[k] = v
	}
	Lighten(m)
	strs := []string{m.Kind, m.Status, m.Namespace}
	bodyLo := uintptr(unsafe.Pointer(&body[0]))
	for k, v := range m.IDs {
		if want[k] != v {
			t.Fatalf("ID %s = %q, want %q", k, v, want[k])
		}
		// Keys are decode's constants and stay as they are; they must not be message text.
		if p := uintptr(unsafe.Pointer(unsafe.StringData(k))); p >= bodyLo && p < bodyLo+uintptr(len(body)) {
			t.Fatalf("ID key %q points into the body", k)
		}
		strs = append(strs, v)
	}
	for _, f := range m.Findings {
		strs = append(strs, f.Message, f.Path)
	}
	lo, hi, total := ^uintptr(0), uintptr(0), 0
	for _, s := range strs {
		if s == "" {
			continue
		}
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		lo, hi, total = min(lo, p), max(hi, p+uintptr(len(s))), total+len(s)
	}
	if m.Kind != "leaveDomainResponse" || m.Status != "Success" || m.Findings[len(m.Findings)-1].Path != "/leaveDomainResponse/nonce" {
		t.Fatalf("values changed: %+v", m)
	}
	if int(hi-lo) > total {
		t.Fatalf("%d bytes of strings spread over %d bytes: not one buffer", total, hi-lo)
	}
}

// Evicting a flow takes off the store's byte count exactly what adding it put on, even when its
// messages gained findings in between (late findings do), so the count cannot drift.
func TestStoreByteCountDoesNotDrift(t *testing.T) {
	s := NewStore(StoreOptions{MaxFlows: 2, MaxBytes: 1 << 30}, nil)
	first := testFlow(1, "<r/>")
	s.Add(first)
	for i := 0; i < 50; i++ {
		first.Request.Message.Add(decode.Finding{Rule: "X", Severity: decode.SevInfo, Message: "late"})
	}
	a, b := testFlow(2, "<r/>"), testFlow(3, "<r/>")
	s.Add(a)
	s.Add(b) // evicts first
	if _, ok := s.Get(first.ID); ok {
		t.Fatal("the first flow was not evicted")
	}
	s.mu.RLock()
	got := s.bytes
	s.mu.RUnlock()
	if want := footprint(a) + footprint(b); got != want {
		t.Fatalf("store counts %d bytes for two flows of %d", got, want)
	}
}
