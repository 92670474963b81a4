package web

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
)

const ldReqHostile = `<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success"><nonce>T1Sq3LQMzhRwj5eASuy5LA==</nonce><domainID>&lt;script&gt;alert(1)&lt;/script&gt;</domainID></roap:leaveDomainResponse>`

func addFlow(s *captures.Store, i int) uint64 {
	body := []byte(fmt.Sprintf(`<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success"><nonce>T1Sq3LQMzhRwj5eASuy5LA==</nonce><domainID>DOM%05d001</domainID></roap:leaveDomainResponse>`, i))
	f := &captures.Flow{Mode: "reverse", Leg: captures.LegDeviceRI, Method: "POST", URL: "http://ri.test/roap", StatusCode: 200,
		Response: captures.Half{Header: http.Header{"Content-Type": {decode.MIMEPDU}}, Body: body, Size: int64(len(body)),
			Message: decode.Decode(body, decode.Hint{ContentType: decode.MIMEPDU})},
		Timings: captures.Timings{Received: time.Now(), Done: time.Now()}}
	return s.Add(f)
}

func newServer(t *testing.T, token string) (*httptest.Server, *captures.Store) {
	store := captures.NewStore(captures.StoreOptions{}, captures.NewBus(256))
	srv := httptest.NewServer(New(Options{Store: store, Token: token, StreamQueue: 8}))
	t.Cleanup(srv.Close)
	return srv, store
}

func getJSON(t *testing.T, c *http.Client, url string, v any) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp
}

func TestRESTFlowsDetailRawRules(t *testing.T) {
	srv, store := newServer(t, "")
	for i := 0; i < 5; i++ {
		addFlow(store, i)
	}
	var page captures.Page
	resp := getJSON(t, http.DefaultClient, srv.URL+"/api/flows?limit=2&offset=1", &page)
	if resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("security headers missing")
	}
	if page.Total != 5 || len(page.Flows) != 2 || page.Flows[0].ID != 2 {
		t.Fatalf("page %+v", page)
	}
	getJSON(t, http.DefaultClient, srv.URL+"/api/flows?domain=DOM00003", &page)
	if page.Total != 1 {
		t.Fatalf("domain filter total %d", page.Total)
	}
	var d FlowDetail
	getJSON(t, http.DefaultClient, srv.URL+"/api/flows/3", &d)
	if d.Response.Message == nil || d.Response.Message.Fields == nil || d.Response.Message.Kind != "leaveDomainResponse" {
		t.Fatalf("detail lacks the decoded message and its field tree: %+v", d.Response)
	}
	resp, _ = http.Get(srv.URL + "/api/flows/3/response/raw")
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	f, _ := store.Get(3)
	if string(raw) != string(f.Response.Body) || resp.Header.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("raw body: %q %v", raw, resp.Header)
	}
	var rules []decode.Rule
	getJSON(t, http.DefaultClient, srv.URL+"/api/rules", &rules)
	if len(rules) < 10 {
		t.Fatalf("rule catalogue has %d rules", len(rules))
	}
	if r := getJSON(t, http.DefaultClient, srv.URL+"/api/flows/999", nil); r.StatusCode != 404 {
		t.Fatalf("missing flow: %d", r.StatusCode)
	}
}

func TestHostileContentIsServedInert(t *testing.T) {
	srv, store := newServer(t, "")
	body := []byte(ldReqHostile)
	store.Add(&captures.Flow{Method: "POST", URL: "http://ri.test/<img src=x onerror=alert(1)>",
		Request: captures.Half{Header: http.Header{"X-Evil": {"<script>alert(2)</script>"}}, Body: body, Size: int64(len(body)),
			Message: decode.Decode(body, decode.Hint{})}})
	resp, _ := http.Get(srv.URL + "/api/flows/1")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "<script>") || strings.Contains(string(b), "<img") {
		t.Fatal("API JSON carries raw markup; it must be escaped")
	}
	if !strings.Contains(string(b), `\u003cscript\u003e`) {
		t.Fatal("expected the markup to be present, escaped")
	}
}

func TestTokenRequiredWhenSet(t *testing.T) {
	srv, _ := newServer(t, "s3cret")
	if r := getJSON(t, http.DefaultClient, srv.URL+"/api/flows", nil); r.StatusCode != 401 {
		t.Fatalf("no token: %d", r.StatusCode)
	}
	jar := &cookieJar{}
	c := &http.Client{Jar: jar}
	if r := getJSON(t, c, srv.URL+"/?token=wrong", nil); r.StatusCode != 401 {
		t.Fatalf("wrong token: %d", r.StatusCode)
	}
	if r := getJSON(t, c, srv.URL+"/?token=s3cret", nil); r.StatusCode != 200 {
		t.Fatalf("right token: %d", r.StatusCode)
	}
	// The cookie set by the first visit authorizes later calls.
	if r := getJSON(t, c, srv.URL+"/api/flows", nil); r.StatusCode != 200 {
		t.Fatalf("cookie: %d", r.StatusCode)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/flows", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	if r, _ := http.DefaultClient.Do(req); r.StatusCode != 200 {
		t.Fatalf("bearer: %d", r.StatusCode)
	}
	if !NeedsToken("0.0.0.0:8081") || !NeedsToken("192.168.1.5:8081") || NeedsToken("127.0.0.1:8081") || NeedsToken("[::1]:8081") || NeedsToken("localhost:8081") {
		t.Fatal("NeedsToken misjudges an address")
	}
}

type urlT = url.URL

type cookieJar struct{ cs []*http.Cookie }

func (j *cookieJar) SetCookies(_ *urlT, cs []*http.Cookie) { j.cs = append(j.cs, cs...) }
func (j *cookieJar) Cookies(_ *urlT) []*http.Cookie        { return j.cs }

func wsURL(srv *httptest.Server, q string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/stream" + q
}

type msg struct {
	Type     string             `json:"type"`
	Seq      uint64             `json:"seq"`
	Last     uint64             `json:"lastSeq"`
	Flows    []captures.Summary `json:"flows"`
	Flow     *captures.Summary  `json:"flow"`
	Total    int                `json:"total"`
	Reason   string             `json:"reason"`
	FlowID   uint64             `json:"flowId"`
	Findings []decode.Finding   `json:"findings"`
	Events   []msg              `json:"events"`
}

// pendingEvents holds the rest of a batch frame, per connection, for read.
var pendingEvents = map[*websocket.Conn][]msg{}

// read returns the next message, unpacking batch frames into their events.
func read(t *testing.T, c *websocket.Conn) msg {
	t.Helper()
	if q := pendingEvents[c]; len(q) > 0 {
		pendingEvents[c] = q[1:]
		return q[0]
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m msg
	if err := c.ReadJSON(&m); err != nil {
		t.Fatal(err)
	}
	if m.Type == "batch" {
		if len(m.Events) < 2 {
			t.Fatalf("a batch frame carries %d events; single events go alone", len(m.Events))
		}
		pendingEvents[c] = m.Events[1:]
		return m.Events[0]
	}
	return m
}

func TestStreamSnapshotEventsAndReconnect(t *testing.T) {
	srv, store := newServer(t, "")
	addFlow(store, 0)
	addFlow(store, 1)
	c, _, err := websocket.DefaultDialer.Dial(wsURL(srv, "?since=0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	snap := read(t, c)
	if snap.Type != "snapshot" || len(snap.Flows) != 2 || snap.Last != 2 {
		t.Fatalf("snapshot %+v", snap)
	}
	addFlow(store, 2)
	ev := read(t, c)
	if ev.Type != "flow" || ev.Seq != 3 || ev.Flow.ID != 3 {
		t.Fatalf("live event %+v", ev)
	}
	c.Close()
	// While disconnected, three more flows.
	for i := 3; i < 6; i++ {
		addFlow(store, i)
	}
	c2, _, err := websocket.DefaultDialer.Dial(wsURL(srv, "?since=3"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for want := uint64(4); want <= 6; want++ {
		m := read(t, c2)
		if m.Type != "flow" || m.Seq != want {
			t.Fatalf("after reconnect got %+v, want flow seq %d", m, want)
		}
	}
}

func TestStreamServerSideFilter(t *testing.T) {
	srv, store := newServer(t, "")
	c, _, err := websocket.DefaultDialer.Dial(wsURL(srv, "?since=0&domain=DOM00007"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m := read(t, c); m.Type != "snapshot" || len(m.Flows) != 0 {
		t.Fatalf("%+v", m)
	}
	for i := 5; i < 9; i++ {
		addFlow(store, i)
	}
	if m := read(t, c); m.Flow == nil || m.Flow.IDs["domainID"] != "DOM00007001" {
		t.Fatalf("filtered stream delivered %+v", m)
	}
}

func TestStreamRefusesForeignOrigin(t *testing.T) {
	srv, _ := newServer(t, "")
	h := http.Header{"Origin": {"http://evil.example"}}
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL(srv, ""), h); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin accepted: %v", err)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/api/clear", nil)
	req.Header.Set("Origin", "http://evil.example")
	if r, _ := http.DefaultClient.Do(req); r.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin clear: %d", r.StatusCode)
	}
}

func TestSlowReaderIsResyncedWithoutSlowingPublishers(t *testing.T) {
	srv, store := newServer(t, "") // StreamQueue 8
	c, _, err := websocket.DefaultDialer.Dial(wsURL(srv, "?since=0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read(t, c) // snapshot
	// The client stops reading; the publisher goes on. Publishing cannot wait for the socket
	// (the bus only does non-blocking sends), so these Adds complete although nobody reads.
	for i := 0; i < 3000; i++ {
		addFlow(store, i)
	}
	// Now read: somewhere there must be a resync, then a snapshot; the snapshot plus the events
	// after it must cover every flow (nothing lost, only re-sent).
	for {
		m := read(t, c)
		if m.Type != "resync" {
			continue
		}
		snap := read(t, c)
		if snap.Type != "snapshot" {
			t.Fatalf("after resync: %+v", snap.Type)
		}
		seen := map[uint64]bool{}
		for _, f := range snap.Flows {
			seen[f.ID] = true
		}
		// More resyncs may follow while the publisher is still ahead: each brings a snapshot.
		for !seen[3000] {
			m := read(t, c)
			switch m.Type {
			case "flow":
				seen[m.Flow.ID] = true
			case "snapshot":
				for _, f := range m.Flows {
					seen[f.ID] = true
				}
			}
		}
		for id := uint64(1); id <= 3000; id++ {
			if !seen[id] {
				t.Fatalf("flow %d missing after resync", id)
			}
		}
		return
	}
}

func TestStreamBatchesQueuedEventsInOrder(t *testing.T) {
	store := captures.NewStore(captures.StoreOptions{}, captures.NewBus(4096))
	srv := httptest.NewServer(New(Options{Store: store, StreamQueue: 1024}))
	defer srv.Close()
	c, _, err := websocket.DefaultDialer.Dial(wsURL(srv, "?since=0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var snap msg
	c.ReadJSON(&snap)
	for i := 0; i < 500; i++ {
		addFlow(store, i)
	}
	frames, next := 0, uint64(1)
	for next <= 500 {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var m msg
		if err := c.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		frames++
		events := []msg{m}
		if m.Type == "batch" {
			events = m.Events
		}
		for _, e := range events {
			if e.Type != "flow" || e.Seq != next {
				t.Fatalf("event %+v, want flow seq %d", e, next)
			}
			next++
		}
	}
	if frames >= 500 {
		t.Fatalf("500 queued events took %d frames; queued events must share frames", frames)
	}
	t.Logf("500 events in %d frames", frames)
}

func TestStreamFramesAtMostEveryLingerInABurst(t *testing.T) {
	store := captures.NewStore(captures.StoreOptions{}, captures.NewBus(4096))
	srv := httptest.NewServer(New(Options{Store: store, StreamQueue: 1024}))
	defer srv.Close()
	c, _, err := websocket.DefaultDialer.Dial(wsURL(srv, "?since=0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var snap msg
	c.ReadJSON(&snap)
	// After a quiet moment an event goes out alone, without waiting for company.
	addFlow(store, 0)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var first msg
	if err := c.ReadJSON(&first); err != nil || first.Type != "flow" || first.Seq != 1 {
		t.Fatalf("first event after a quiet moment: %+v (%v)", first, err)
	}
	// A steady burst, one event a millisecond: frames come no closer than streamLinger.
	const n = 300
	go func() {
		for i := 1; i <= n; i++ {
			addFlow(store, i)
			time.Sleep(time.Millisecond)
		}
	}()
	var at []time.Time
	next := uint64(2)
	for next <= n+1 {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var m msg
		if err := c.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		at = append(at, time.Now())
		events := []msg{m}
		if m.Type == "batch" {
			events = m.Events
		}
		for _, e := range events {
			if e.Seq != next {
				t.Fatalf("event seq %d, want %d", e.Seq, next)
			}
			next++
		}
	}
	span := at[len(at)-1].Sub(at[0])
	if most := int(span/streamLinger) + 3; len(at) > most {
		t.Fatalf("%d events in %d frames over %v: more than one frame per %v", n, len(at), span, streamLinger)
	}
	t.Logf("%d events in %d frames over %v", n, len(at), span)
}
