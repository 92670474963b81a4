package web

// Synthetic traffic for the browser tests: real message bytes from the shared vectors, decoded by
// the real decoder, wrapped in flows on the right legs with plausible headers, timings and
// correlation keys, plus one hostile flow whose every text field carries markup. The feeder only
// writes to a captures.Store, so the browser harness can run over any store (this one or the
// demo's).

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/captures"
	"github.com/roapproxy/roapproxy/decode"
)

// Values shared by the sce-synthetic vectors (see vectors/SOURCES-sce-token.md).
const (
	seedDomain    = "ACMEUSERDOM42001"
	seedDeviceID  = "gFRTYNpC6VEhQafFOugGmY6VGeI="
	seedDevNonce  = "T1Sq3LQMzhRwj5eASuy5LA=="
	seedTrigNonce = "r6OqQRJ5dUF6cIs3VoMfqw=="
	seedGenNonce  = "kf88hpd0yxkbvF/ARtdyXQ=="
	riHost        = "ri.acme-music.test"
	ri2Host       = "ri.tunes-shop.test"
	deaHost       = "dea.acme-home.test"
	ocspHost      = "ocsp.acme-pki.test"
)

// hostileMarker is text the hostile flow carries in its body; tests look for it as plain text.
const hostileMarker = `<script>window.__pwned=1</script>`

// feedVectors holds the message bodies the feeder sends, as they would be on the wire.
type feedVectors struct {
	ldReq, ldResp                  []byte // ROAP leave (device ↔ RI)
	rdpReq, rdpResp, rdpRespDAD    []byte // SCE RDP proxy leave (RI ↔ DEA)
	drmTrigger, roapLeaveTrigger   []byte
	tokResp, tokRespBad, tokRespQ0 []byte
	deviceHello, roResponse        []byte
}

func readVector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "shared", "vectors", name))
	if err != nil {
		t.Fatalf("shared vector: %v", err)
	}
	return onWire(b)
}

// onWire drops the XML declaration and the annotation comment the vector files open with: what
// peers send starts at the root element.
func onWire(b []byte) []byte {
	for {
		b = bytes.TrimLeft(b, " \t\r\n")
		switch {
		case bytes.HasPrefix(b, []byte("<?")):
			i := bytes.Index(b, []byte("?>"))
			if i < 0 {
				return b
			}
			b = b[i+2:]
		case bytes.HasPrefix(b, []byte("<!--")):
			i := bytes.Index(b, []byte("-->"))
			if i < 0 {
				return b
			}
			b = b[i+3:]
		default:
			return bytes.TrimRight(b, " \t\r\n")
		}
	}
}

func loadFeedVectors(t testing.TB) *feedVectors {
	v := &feedVectors{
		ldReq:            readVector(t, "sce-synthetic-roap-leaveDomainRequest.body.xml"),
		ldResp:           readVector(t, "sce-synthetic-roap-leaveDomainResponse.xml"),
		rdpReq:           readVector(t, "sce-synthetic-rdpProxyLeaveUserDomainRequest.xml"),
		rdpResp:          readVector(t, "sce-synthetic-rdpProxyLeaveUserDomainResponse-success.xml"),
		rdpRespDAD:       readVector(t, "sce-synthetic-NEG-rdpProxyLeaveUserDomainResponse-DomainAccessDenied.xml"),
		drmTrigger:       readVector(t, "sce-synthetic-drmTrigger-rdpProxyLeaveUserDomain.xml"),
		roapLeaveTrigger: readVector(t, "sce-synthetic-roap-leaveDomain-trigger.xml"),
		tokResp:          readVector(t, "token-synthetic-TokenDeliveryResponse-2pass-success.xml"),
		tokRespBad:       readVector(t, "token-synthetic-NEG-TokenDeliveryResponse-replayed-tdid.xml"),
		tokRespQ0:        readVector(t, "token-synthetic-TokenDeliveryResponse-ack-qty0.xml"),
		deviceHello:      readVector(t, "deviceHello.libxml2-bug152470.xml"),
		roResponse:       readVector(t, "roResponse.symbian-push-test.xml"),
	}
	// The RDP request must embed the device's request byte for byte; the vectors promise it.
	if !bytes.Contains(v.rdpReq, []byte(base64.StdEncoding.EncodeToString(v.ldReq))) {
		t.Fatal("vectors: the RDP request does not embed the leaveDomainRequest body verbatim")
	}
	return v
}

// half builds one body with headers and its decoded message.
func half(ct string, body []byte, dir decode.Direction, answers string, extra ...string) captures.Half {
	h := http.Header{}
	if ct != "" {
		h.Set("Content-Type", ct)
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	for i := 0; i+1 < len(extra); i += 2 {
		h.Add(extra[i], extra[i+1])
	}
	out := captures.Half{Header: h, Body: body, Size: int64(len(body))}
	if len(body) > 0 {
		out.Message = decode.Decode(body, decode.Hint{ContentType: ct, Direction: dir, Answers: answers})
	}
	return out
}

// exchange describes one HTTP exchange for mkFlow.
type exchange struct {
	id               uint64 // reserved with Store.NextID when the exchange started (0: assign on Add)
	leg              captures.Leg
	mode             string
	client, upstream string
	method, url      string
	reqCT            string
	req              []byte
	reqHeaders       []string
	status           int
	respCT           string
	resp             []byte
	respHeaders      []string
	start            time.Time
	dur              time.Duration
	corr             []string
	findings         []decode.Finding
}

func mkFlow(x exchange) *captures.Flow {
	if x.mode == "" {
		x.mode = "reverse"
	}
	if x.method == "" {
		x.method = "POST"
	}
	f := &captures.Flow{ID: x.id, Mode: x.mode, Leg: x.leg, Client: x.client, Upstream: x.upstream, Method: x.method,
		URL: x.url, Proto: "HTTP/1.1", StatusCode: x.status, Correlation: x.corr, Findings: x.findings}
	f.Request = half(x.reqCT, x.req, decode.DirRequest, "", x.reqHeaders...)
	answers := ""
	if f.Request.Message != nil {
		answers = f.Request.Message.Kind
	}
	f.Response = half(x.respCT, x.resp, decode.DirResponse, answers, x.respHeaders...)
	f.Timings = captures.Timings{
		Received:     x.start,
		SentUpstream: x.start.Add(x.dur / 20),
		FirstByte:    x.start.Add(x.dur * 17 / 20),
		Responded:    x.start.Add(x.dur * 18 / 20),
		Done:         x.start.Add(x.dur),
	}
	if f.Findings == nil {
		f.Findings = []decode.Finding{}
	}
	return f
}

// fakeDeviceID returns a device key identifier (SPKI SHA-1 style) for device n; n = 0 is the
// seed device.
func fakeDeviceID(n int) string {
	if n == 0 {
		return seedDeviceID
	}
	h := sha1.Sum([]byte(fmt.Sprintf("device-%d", n)))
	return base64.StdEncoding.EncodeToString(h[:])
}

const deviceUA = "Nokia6120c/3.83 (SymbianOS/9.2; Series60/3.1) OMADRMAgent/2.0"

// leaveExchange returns the two flows of one proxied leave (seed 000) in the order the proxy
// completes them: the RI's RDP exchange with the DEA finishes inside the device's exchange. The
// device is fakeDeviceID(n); denied makes the DEA answer DomainAccessDenied (a status the seed
// forbids there) while the RI tells the device Success, which breaks the status echo.
func leaveExchange(s *captures.Store, v *feedVectors, n int, start time.Time, denied bool) []*captures.Flow {
	dev := fakeDeviceID(n)
	swap := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte(seedDeviceID), []byte(dev)) }
	ldReq := swap(v.ldReq)
	rdpReq := bytes.Replace(v.rdpReq, []byte(base64.StdEncoding.EncodeToString(v.ldReq)), []byte(base64.StdEncoding.EncodeToString(ldReq)), 1)
	rdpReq = swap(rdpReq)
	ldResp, rdpResp := v.ldResp, swap(v.rdpResp)
	if denied {
		rdpResp = swap(v.rdpRespDAD)
	}
	key := []string{"leave:" + seedDomain + ":" + dev}
	devID, rdpID := s.NextID(), s.NextID()
	device := mkFlow(exchange{id: devID, leg: captures.LegDeviceRI, client: fmt.Sprintf("10.20.%d.%d:%d", 1+n/250%250, 2+n%250, 40000+n%20000),
		upstream: riHost + ":443", url: "https://" + riHost + "/roap/leave",
		reqCT: decode.MIMEPDU, req: ldReq, reqHeaders: []string{"User-Agent", deviceUA, "Accept", decode.MIMEPDU},
		status: 200, respCT: decode.MIMEPDU, resp: ldResp, respHeaders: []string{"Server", "AcmeRI/4.2", "Cache-Control", "no-store"},
		start: start, dur: 180 * time.Millisecond, corr: key})
	rdp := mkFlow(exchange{id: rdpID, leg: captures.LegRIDEA, mode: "forward", client: "10.0.1.5:52011", upstream: deaHost + ":443",
		url: "https://" + deaHost + "/sce/rdp", reqCT: "application/xml", req: rdpReq, reqHeaders: []string{"User-Agent", "AcmeRI/4.2 SCE-GEN/1.0"},
		status: 200, respCT: "application/xml", resp: rdpResp, respHeaders: []string{"Server", "AcmeDEA/1.1"},
		start: start.Add(25 * time.Millisecond), dur: 110 * time.Millisecond, corr: key})
	if denied {
		device.Findings = append(device.Findings, decode.Finding{
			Rule:     "DOM-7.5.3.2-STATUS-ECHO",
			Severity: decode.SevError,
			Message:  "leaveDomainResponse status Success differs from the DEA's rdpProxyLeaveUserDomainResponse status DomainAccessDenied",
			Path:     "/leaveDomainResponse/@status",
			Ref:      "seed 000 §7.5.3.2; sce-token §9 #30",
		})
	}
	return []*captures.Flow{rdp, device}
}

// otherTraffic returns the flows of one round of everyday traffic around device n.
func otherTraffic(s *captures.Store, v *feedVectors, n int, start time.Time) []*captures.Flow {
	dev := fakeDeviceID(n)
	client := fmt.Sprintf("10.20.7.%d:%d", 2+n%250, 41000+n%20000)
	var out []*captures.Flow
	switch n % 5 {
	case 0:
		out = append(out, mkFlow(exchange{id: s.NextID(), leg: captures.LegDeviceRI, client: client, upstream: ri2Host + ":80",
			method: "GET", url: "http://" + ri2Host + "/trigger/leave?d=" + fmt.Sprint(n), reqHeaders: []string{"User-Agent", deviceUA},
			status: 200, respCT: decode.MIMETrig, resp: v.roapLeaveTrigger, start: start, dur: 35 * time.Millisecond}))
	case 1:
		hello := bytes.ReplaceAll(v.deviceHello, []byte("vXENc+Um/9/NvmYKiHDLaErK0gk="), []byte(dev))
		riHello := []byte(`<roap:riHello xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success" sessionId="s` + fmt.Sprint(n) +
			`"><selectedVersion>1.0</selectedVersion><riID><keyIdentifier xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" algorithm="http://www.w3.org/2000/09/xmldsig#sha1" xsi:type="roap:X509SPKIHash"><hash>3hDKO+0bWpDJtl1pFmJUGYZBh7w=</hash></keyIdentifier></riID><selectedAlgorithm>http://www.w3.org/2000/09/xmldsig#sha1</selectedAlgorithm><riNonce>aGVsbG8tcmktbm9uY2UtMDE=</riNonce></roap:riHello>`)
		out = append(out, mkFlow(exchange{id: s.NextID(), leg: captures.LegDeviceRI, client: client, upstream: riHost + ":443",
			url: "https://" + riHost + "/roap", reqCT: decode.MIMEPDU, req: hello, reqHeaders: []string{"User-Agent", deviceUA},
			status: 200, respCT: decode.MIMEPDU, resp: riHello, start: start, dur: 60 * time.Millisecond,
			corr: []string{"reg:s" + fmt.Sprint(n)}}))
	case 2:
		resp := v.tokResp
		if n%10 == 7 {
			resp = v.tokRespBad
		}
		req := []byte(`<roap:tokenRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0"><deviceID><keyIdentifier xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" algorithm="http://www.w3.org/2000/09/xmldsig#sha1" xsi:type="roap:X509SPKIHash"><hash>` + seedDeviceID +
			`</hash></keyIdentifier></deviceID><riID><keyIdentifier xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" algorithm="http://www.w3.org/2000/09/xmldsig#sha1" xsi:type="roap:X509SPKIHash"><hash>3hDKO+0bWpDJtl1pFmJUGYZBh7w=</hash></keyIdentifier></riID><nonce>2AK0eNzeUFXfOhHE1l9Z8w==</nonce><time>2011-07-05T10:00:00Z</time><tokenDeliveryID>tdid-0001</tokenDeliveryID><signature>AAAAAAAAAAAAAAAAAAAAAAAAAAA=</signature></roap:tokenRequest>`)
		out = append(out, mkFlow(exchange{id: s.NextID(), leg: captures.LegDeviceRI, client: client, upstream: riHost + ":443",
			url: "https://" + riHost + "/xbs/token", reqCT: decode.MIMEPDU, req: req, reqHeaders: []string{"User-Agent", deviceUA},
			status: 200, respCT: decode.MIMEPDU, resp: resp, start: start, dur: 95 * time.Millisecond,
			corr: []string{"token:" + seedDeviceID + ":2AK0eNzeUFXfOhHE1l9Z8w=="}}))
	case 3:
		ocspReq := []byte{0x30, 0x42, 0x30, 0x40, 0x30, 0x3e, 0x30, 0x3c, 0x30, 0x3a, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14}
		ocspResp := []byte{0x30, 0x03, 0x0a, 0x01, 0x06} // responseStatus unauthorized
		out = append(out, mkFlow(exchange{id: s.NextID(), leg: captures.LegOCSP, mode: "forward", client: "10.0.1.5:52100",
			upstream: ocspHost + ":80", url: "http://" + ocspHost + "/", reqCT: "application/ocsp-request", req: ocspReq,
			status: 200, respCT: "application/ocsp-response", resp: ocspResp, start: start, dur: 40 * time.Millisecond}))
	case 4:
		// The DEA's fan-out after a proxied leave (seed 000 §7.6): it tells the other RI that still
		// holds a context for the domain, once the leave has completed.
		out = append(out, mkFlow(exchange{id: s.NextID(), leg: captures.LegDEARI, mode: "forward", client: "10.0.2.9:60123",
			upstream: ri2Host + ":443", url: "https://" + ri2Host + "/sce/trigger", reqCT: "application/xml", req: v.drmTrigger,
			status: 204, start: start.Add(190 * time.Millisecond), dur: 20 * time.Millisecond, corr: []string{"leave:" + seedDomain + ":" + dev}}))
		out = append(out, mkFlow(exchange{id: s.NextID(), leg: captures.LegOther, mode: "forward", client: client,
			upstream: "cdn.example.test:80", method: "GET", url: "http://cdn.example.test/album/cover-" + fmt.Sprint(n) + ".jpg",
			status: 404, respCT: "text/html", resp: []byte("<html><body>not found</body></html>"), start: start.Add(3 * time.Millisecond), dur: 12 * time.Millisecond}))
	}
	return out
}

// hostileFlow carries markup in every place traffic can reach the UI: URL, peers, header names
// and values, element text, attribute values, IDs, findings, correlation keys, the error text.
func hostileFlow(start time.Time) *captures.Flow {
	req := []byte(`<roap:leaveDomainRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0" triggerNonce="&quot;&gt;&lt;img src=x onerror=window.__pwned=10&gt;"><deviceID><keyIdentifier><hash><![CDATA[<script>window.__pwned=11</script>]]></hash></keyIdentifier></deviceID><riID><keyIdentifier><hash>3hDKO+0bWpDJtl1pFmJUGYZBh7w=</hash></keyIdentifier></riID><nonce>T1Sq3LQMzhRwj5eASuy5LA==</nonce><time>2011-07-05T10:00:00Z</time><domainID><![CDATA[` + hostileMarker + `]]></domainID><signature>AAAA</signature></roap:leaveDomainRequest>`)
	resp := []byte(`<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success"><nonce onerror="window.__pwned=2">T1Sq3LQMzhRwj5eASuy5LA==</nonce><domainID><![CDATA[` + hostileMarker + `]]></domainID><img src="x" onerror="window.__pwned=3"/><!-- <script>window.__pwned=4</script> --></roap:leaveDomainResponse>`)
	f := mkFlow(exchange{
		leg:         captures.LegDeviceRI,
		client:      `<img src=x onerror=window.__pwned=5>`,
		upstream:    riHost + ":443",
		url:         `https://` + riHost + `/roap/<script>window.__pwned=6</script>?q="><img src=x onerror=window.__pwned=7>`,
		reqCT:       decode.MIMEPDU,
		req:         req,
		reqHeaders:  []string{"User-Agent", `<script>window.__pwned=8</script>`, `X-<img src=x onerror=window.__pwned=9>`, `"><svg onload=window.__pwned=12>`},
		status:      200,
		respCT:      decode.MIMEPDU,
		resp:        resp,
		respHeaders: []string{"Set-Cookie", `a=<script>window.__pwned=13</script>`},
		start:       start,
		dur:         70 * time.Millisecond,
		corr:        []string{"leave:<script>window.__pwned=14</script>:x"},
		findings: []decode.Finding{{
			Rule:     `<img src=x onerror=window.__pwned=15>`,
			Severity: decode.SevWarning,
			Message:  `finding text <script>window.__pwned=16</script>`,
			Path:     `/leaveDomainResponse/<script>`,
			Ref:      `javascript:window.__pwned=17`,
		}},
	})
	f.Error = `upstream said <script>window.__pwned=18</script>`
	f.Rules = []string{`<b onmouseover=window.__pwned=19>rule</b>`}
	return f
}

// ensureFixtures adds the seed 000 exchange (the exact vector bytes, device seedDeviceID) and the
// hostile flow when the store lacks them (at start, and again after the UI cleared the store).
func ensureFixtures(s *captures.Store, v *feedVectors, now time.Time) {
	seedKey := "leave:" + seedDomain + ":" + seedDeviceID
	haveSeed, haveHostile := false, false
	for _, f := range s.Snapshot() {
		for _, k := range f.Correlation {
			haveSeed = haveSeed || k == seedKey
		}
		haveHostile = haveHostile || strings.Contains(f.Error, "__pwned")
	}
	if !haveSeed {
		for _, f := range leaveExchange(s, v, 0, now, false) {
			s.Add(f)
		}
	}
	if !haveHostile {
		s.Add(hostileFlow(now.Add(time.Millisecond)))
	}
}

// feedSynthetic adds realistic traffic to s every interval until ctx ends.
func feedSynthetic(ctx context.Context, s *captures.Store, v *feedVectors, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	// Some leaves get a late finding, as when the tracker's fan-out window expires without the
	// DEA's triggers: the UI must update rows it already shows.
	type late struct {
		due time.Time
		id  uint64
	}
	var pending []late
	for n := 1; ; n++ {
		now := time.Now()
		ensureFixtures(s, v, now)
		var fs []*captures.Flow
		if n%2 == 1 {
			fs = leaveExchange(s, v, n, now, n%6 == 5)
			if n%4 == 1 && n%10 != 9 { // n%10 == 9: the DEA's trigger to ri2Host does come
				pending = append(pending, late{due: now.Add(2 * time.Second), id: fs[1].ID})
			}
		}
		fs = append(fs, otherTraffic(s, v, n, now.Add(5*time.Millisecond))...)
		for _, f := range fs {
			s.Add(f)
		}
		for len(pending) > 0 && !pending[0].due.After(now) {
			s.AddFindings(pending[0].id, []decode.Finding{{
				Rule:     "DOM-7.5-FANOUT",
				Severity: decode.SevWarning,
				Message:  "no rdpProxyLeaveUserDomain trigger from the DEA to " + ri2Host + ", which still holds a context for this device and domain",
				Ref:      "seed 000 §7.5; sce-token §9 #34",
			}})
			pending = pending[1:]
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// fillStore adds n small flows (a leaveDomainResponse naming domain FILL%06d each) quickly, for
// the table's scale test.
func fillStore(s *captures.Store, n int) {
	start := time.Now().Add(-time.Duration(n) * time.Millisecond)
	for i := 1; i <= n; i++ {
		body := []byte(fmt.Sprintf(`<roap:leaveDomainResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success"><nonce>T1Sq3LQMzhRwj5eASuy5LA==</nonce><domainID>FILL%06d</domainID></roap:leaveDomainResponse>`, i))
		s.Add(mkFlow(exchange{leg: captures.LegDeviceRI, client: "10.9.0.1:4000", upstream: riHost + ":443",
			url: "https://" + riHost + "/roap/" + strings.Repeat("x", i%7), status: 200, respCT: decode.MIMEPDU, resp: body,
			start: start.Add(time.Duration(i) * time.Millisecond), dur: time.Millisecond}))
	}
}
