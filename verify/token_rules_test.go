package verify

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roapproxy/roapproxy/decode"
	"github.com/roapproxy/roapproxy/sim"
)

// Seed 001 reporting rules across messages: NOREPORT-TIMING, REPORT-ROUTING, REPORT-TIMELINESS,
// LTCT-ADVANCE and FAIL-TERMINATE.

const (
	tokURL    = "https://ri.example/token"
	reportURL = "https://ri.example/token-report"
)

// delivery is a Success TokenDeliveryResponse with reporting terms (zero times are left out).
type delivery struct {
	ri                     *sim.Identity
	dev, tdid, nonce       string
	qty                    int
	url                    string
	earliest, latest, ltct time.Time
	ocsp                   []byte
}

func xsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func (d delivery) build(t testing.TB) []byte {
	t.Helper()
	opt := func(name string, v string) *decode.Node {
		if v == "" {
			return nil
		}
		return decode.El(name, v)
	}
	optT := func(name string, v time.Time) *decode.Node {
		if v.IsZero() {
			return nil
		}
		return decode.El(name, xsTime(v))
	}
	var ocsp *decode.Node
	if d.ocsp != nil {
		ocsp = decode.El("ocspResponse", b64s(d.ocsp))
	}
	root := roapRoot("TokenDeliveryResponse", decode.A("status", "Success"), ident("deviceID", d.dev), ident("riID", d.ri.ID()),
		decode.El("tokenDeliveryID", d.tdid), opt("nonce", d.nonce), decode.El("tokenQuantity", strconv.Itoa(d.qty)),
		opt("tokenReportingURL", d.url), optT("earliestReportingTime", d.earliest), optT("latestReportingTime", d.latest),
		optT("latestTokenConsumptionTime", d.ltct), chainEl("certificateChain", d.ri), ocsp)
	return sign(t, root, d.ri.Key, signPSS20)
}

func failure(status string) []byte {
	return roapRoot("TokenDeliveryResponse", decode.A("status", status)).Bytes()
}

// tokReq and tokResp observe one side of an exchange at f.now+1s, with the request URL as the
// proxy would record it ("" for none).
func tokReq(f *flow, ex, url string, body []byte) Result {
	m := decode.Decode(body, decode.Hint{Direction: decode.DirRequest})
	f.kind[ex] = m.Kind
	return f.v.Track(Observation{Message: m, Time: f.tick(), Leg: LegDeviceRI, Direction: decode.DirRequest, Exchange: ex, Server: "ri.example:443", URL: url})
}

func tokResp(f *flow, ex, url string, body []byte) Result {
	m := decode.Decode(body, decode.Hint{Direction: decode.DirResponse, Answers: f.kind[ex]})
	return f.v.Track(Observation{Message: m, Time: f.tick(), Leg: LegDeviceRI, Direction: decode.DirResponse, Exchange: ex, Server: "ri.example:443", URL: url})
}

// tokenRig is one device and one RI with an OCSP response valid for two days.
type tokenRig struct {
	p       *sim.PKI
	dev, ri *sim.Identity
	ocsp    []byte
}

func newTokenRig(t *testing.T) *tokenRig {
	t.Helper()
	p := testPKI(t)
	r := responder(p)
	r.SetValidity(48 * time.Hour)
	der, err := r.Respond(p.RIs[0].Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &tokenRig{p: p, dev: p.Devices[0], ri: p.RIs[0], ocsp: der}
}

// terms are the reporting terms relative to t0 used by most tests: report between +10m and +20m,
// consume until +30m.
func (r *tokenRig) delivery(tdid, n string, qty int) delivery {
	return delivery{ri: r.ri, dev: r.dev.ID(), tdid: tdid, nonce: n, qty: qty, url: reportURL,
		earliest: t0.Add(10 * time.Minute), latest: t0.Add(20 * time.Minute), ltct: t0.Add(30 * time.Minute), ocsp: r.ocsp}
}

// deliver runs a tokenRequest and its 2-pass answer d, at f.now.
func (r *tokenRig) deliver(t *testing.T, f *flow, ex string, d delivery) []decode.Finding {
	t.Helper()
	n := nonce(ex)
	d.nonce = n
	tokReq(f, ex, tokURL, tokenRequest(t, r.dev, r.ri.ID(), n, d.tdid, ""))
	res := tokResp(f, ex, tokURL, d.build(t))
	noErrors(t, res.Findings)
	return res.Findings
}

// report observes a tokenConsumptionReport of tdid POSTed to url at time at (the clock ticks one
// second before each observation); its response is up to the caller.
func (r *tokenRig) report(t *testing.T, f *flow, ex, url, tdid string, at time.Time) Result {
	t.Helper()
	f.now = at.Add(-time.Second)
	return tokReq(f, ex, url, tokenReport(t, r.dev, r.ri.ID(), nonce(ex), tdid))
}

// noReport observes a tokenRequest answered NoTokenConsumptionReport at time at.
func (r *tokenRig) noReport(t *testing.T, f *flow, ex string, at time.Time) []decode.Finding {
	t.Helper()
	f.now = at.Add(-2 * time.Second)
	tokReq(f, ex, tokURL, tokenRequest(t, r.dev, r.ri.ID(), nonce(ex), "td-"+ex, ""))
	return tokResp(f, ex, tokURL, failure("NoTokenConsumptionReport")).Findings
}

func wantMsg(t *testing.T, fs []decode.Finding, id string, sev decode.Severity, part string) {
	t.Helper()
	want(t, fs, id, sev)
	for _, f := range fs {
		if f.Rule == id && f.Severity == sev && strings.Contains(f.Message, part) {
			return
		}
	}
	t.Fatalf("no %s %s saying %q:%s", sev, id, part, dump(fs))
}

func TestTokenNoReportTiming(t *testing.T) {
	r := newTokenRig(t)
	const id = "XBS-9.2.3-NOREPORT-TIMING"
	setup := func(t *testing.T) *flow {
		f := newFlow(t, newVerifier(r.p))
		r.deliver(t, f, "d1", r.delivery("td-1", "", 5))
		return f
	}
	t.Run("after the deadline with no report: plausible", func(t *testing.T) {
		f := setup(t)
		fs := r.noReport(t, f, "late", t0.Add(31*time.Minute))
		wantNot(t, fs, id)
		clean(t, fs)
	})
	t.Run("before the deadline", func(t *testing.T) {
		f := setup(t)
		wantMsg(t, r.noReport(t, f, "early", t0.Add(25*time.Minute)), id, decode.SevWarning, "has not passed")
	})
	t.Run("a report was seen since the delivery", func(t *testing.T) {
		f := setup(t)
		r.report(t, f, "rep", reportURL, "td-1", t0.Add(15*time.Minute)) // its answer was not captured
		wantMsg(t, r.noReport(t, f, "nr", t0.Add(31*time.Minute)), id, decode.SevWarning, "was seen after it")
	})
	t.Run("a report the RI refused does not count", func(t *testing.T) {
		f := setup(t)
		r.report(t, f, "rep", reportURL, "td-1", t0.Add(15*time.Minute))
		tokResp(f, "rep", reportURL, failure("TokenConsumptionReportError"))
		wantNot(t, r.noReport(t, f, "nr", t0.Add(31*time.Minute)), id)
	})
	t.Run("no delivery asked for reports", func(t *testing.T) {
		f := newFlow(t, newVerifier(r.p))
		d := r.delivery("td-1", "", 5)
		d.url, d.earliest, d.latest, d.ltct = "", time.Time{}, time.Time{}, time.Time{}
		r.deliver(t, f, "d1", d)
		wantMsg(t, r.noReport(t, f, "nr", t0.Add(31*time.Minute)), id, decode.SevWarning, "carried a tokenReportingURL")
	})
	t.Run("the last delivery with a URL moved the deadline", func(t *testing.T) {
		f := setup(t)
		d := r.delivery("td-2", "", 5)
		d.ltct = t0.Add(2 * time.Hour)
		f.now = t0.Add(5 * time.Minute)
		r.deliver(t, f, "d2", d)
		wantMsg(t, r.noReport(t, f, "nr", t0.Add(31*time.Minute)), id, decode.SevWarning, "td-2")
	})
	t.Run("history not captured", func(t *testing.T) {
		f := newFlow(t, newVerifier(r.p))
		want(t, r.noReport(t, f, "nr", t0.Add(31*time.Minute)), id, decode.SevInfo)
	})
}

func TestTokenReportRouting(t *testing.T) {
	r := newTokenRig(t)
	const id = "XBS-9.2.3-REPORT-ROUTING"
	setup := func(t *testing.T) *flow {
		f := newFlow(t, newVerifier(r.p))
		r.deliver(t, f, "d1", r.delivery("td-1", "", 5))
		return f
	}
	t.Run("to the reporting URL (default port, case, trailing slash)", func(t *testing.T) {
		f := setup(t)
		wantNot(t, r.report(t, f, "rep", "https://RI.example:443/token-report/", "td-1", t0.Add(15*time.Minute)).Findings, id)
	})
	t.Run("URL not observed", func(t *testing.T) {
		f := setup(t)
		wantNot(t, r.report(t, f, "rep", "", "td-1", t0.Add(15*time.Minute)).Findings, id)
	})
	t.Run("to another host", func(t *testing.T) {
		f := setup(t)
		wantMsg(t, r.report(t, f, "rep", "https://elsewhere.example/token-report", "td-1", t0.Add(15*time.Minute)).Findings, id, decode.SevWarning, "host differ")
	})
	t.Run("to the RI's ROAP URL over plain HTTP", func(t *testing.T) {
		f := setup(t)
		wantMsg(t, r.report(t, f, "rep", "http://ri.example/roap", "td-1", t0.Add(15*time.Minute)).Findings, id, decode.SevWarning, "scheme, host, path differ")
	})
	t.Run("to the URL of an older delivery", func(t *testing.T) {
		f := setup(t)
		d := r.delivery("td-2", "", 5)
		d.url = "https://reports.example/v2"
		r.deliver(t, f, "d2", d)
		wantMsg(t, r.report(t, f, "rep", reportURL, "td-1", t0.Add(15*time.Minute)).Findings, id, decode.SevWarning, "older delivery td-1")
	})
}

func TestURLDiff(t *testing.T) {
	for _, c := range []struct{ got, want, diff string }{
		{"https://a.example/r", "https://a.example/r", ""},
		{"https://A.example:443/r/", "https://a.example/r", ""},
		{"http://a.example:80/r", "http://a.example/r", ""},
		{"/r", "https://a.example/r", ""}, // a relative URL is compared on its path only
		{"http://a.example/r", "https://a.example/r", "scheme, host"},
		{"https://a.example:8443/r", "https://a.example/r", "host"},
		{"https://a.example/R", "https://a.example/r", "path"},
		{"https://a.example/r?x=1", "https://a.example/r", ""},
		{"https://a.example/r", "/r", ""},
		{"https://a.example/r", "/s", "path"},
	} {
		if got := urlDiff(c.got, c.want); got != c.diff {
			t.Errorf("urlDiff(%q, %q) = %q, want %q", c.got, c.want, got, c.diff)
		}
	}
}

func TestTokenReportTimeliness(t *testing.T) {
	r := newTokenRig(t)
	const id = "XBS-9.2.3-REPORT-TIMELINESS"
	for _, c := range []struct {
		name  string
		at    time.Duration
		class string
	}{
		{"early", 5 * time.Minute, "is early against the delivery it reports, td-1"},
		{"on time", 15 * time.Minute, "is on time against the delivery it reports, td-1"},
		{"late", 25 * time.Minute, "is late against the delivery it reports, td-1"},
		{"late and blocked", 35 * time.Minute, "the device was blocked"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFlow(t, newVerifier(r.p))
			r.deliver(t, f, "d1", r.delivery("td-1", "", 5))
			fs := r.report(t, f, "rep", reportURL, "td-1", t0.Add(c.at)).Findings
			wantMsg(t, fs, id, decode.SevInfo, c.class)
			clean(t, fs)
		})
	}
	t.Run("an unknown delivery is judged against the last one", func(t *testing.T) {
		f := newFlow(t, newVerifier(r.p))
		r.deliver(t, f, "d1", r.delivery("td-1", "", 5))
		wantMsg(t, r.report(t, f, "rep", reportURL, "td-bogus", t0.Add(5*time.Minute)).Findings, id, decode.SevInfo, "td-bogus names no captured delivery")
	})
	t.Run("no delivery captured", func(t *testing.T) {
		f := newFlow(t, newVerifier(r.p))
		wantMsg(t, r.report(t, f, "rep", reportURL, "td-1", t0.Add(5*time.Minute)).Findings, id, decode.SevInfo, "cannot be judged")
	})
}

func TestTokenLTCTAdvance(t *testing.T) {
	r := newTokenRig(t)
	const id = "XBS-9.2.3-LTCT-ADVANCE"
	// run delivers td-1, reports at `at` and answers with a quantity-0 acknowledgement whose
	// latestTokenConsumptionTime is ackLTCT (zero: no answer).
	run := func(t *testing.T, at time.Duration, ackLTCT time.Time) (*flow, []decode.Finding) {
		v := newVerifier(r.p)
		f := newFlow(t, v)
		r.deliver(t, f, "d1", r.delivery("td-1", "", 5))
		r.report(t, f, "rep", reportURL, "td-1", t0.Add(at))
		if ackLTCT.IsZero() {
			return f, nil
		}
		ack := r.delivery("td-ack", nonce("rep"), 0)
		ack.earliest, ack.latest, ack.ltct = ackLTCT.Add(-20*time.Minute), ackLTCT.Add(-10*time.Minute), ackLTCT
		res := tokResp(f, "rep", reportURL, ack.build(t))
		noErrors(t, res.Findings)
		return f, res.Findings
	}
	prev := t0.Add(30 * time.Minute)
	t.Run("on time, extended", func(t *testing.T) {
		f, fs := run(t, 15*time.Minute, prev.Add(time.Hour))
		wantNot(t, fs, id)
		if late := f.v.Tracker().Tick(prev.Add(time.Hour)); len(late) != 0 {
			t.Fatalf("late: %+v", late)
		}
	})
	t.Run("on time, not extended", func(t *testing.T) {
		f, fs := run(t, 15*time.Minute, prev)
		wantMsg(t, fs, id, decode.SevWarning, "does not extend the previous "+stamp(prev))
		if late := f.v.Tracker().Tick(prev.Add(time.Hour)); len(late) != 0 {
			t.Fatalf("late after the finding: %+v", late)
		}
	})
	t.Run("early, unchanged", func(t *testing.T) {
		_, fs := run(t, 5*time.Minute, prev)
		wantNot(t, fs, id)
	})
	t.Run("on time, no delivery before the deadline", func(t *testing.T) {
		f, _ := run(t, 15*time.Minute, time.Time{})
		if late := f.v.Tracker().Tick(prev.Add(-time.Minute)); len(late) != 0 {
			t.Fatalf("due before the deadline: %+v", late)
		}
		late := f.v.Tracker().Tick(prev.Add(time.Minute))
		if len(late) != 1 || late[0].Key != "token:"+r.dev.ID()+":"+nonce("rep") {
			t.Fatalf("late: %+v", late)
		}
		wantMsg(t, []decode.Finding{late[0].Finding}, id, decode.SevWarning, "before it passed at "+stamp(prev))
	})
	t.Run("on time but refused: nothing owed", func(t *testing.T) {
		f, _ := run(t, 15*time.Minute, time.Time{})
		tokResp(f, "rep", reportURL, failure("TokenConsumptionReportError"))
		if late := f.v.Tracker().Tick(prev.Add(time.Minute)); len(late) != 0 {
			t.Fatalf("late: %+v", late)
		}
	})
	t.Run("on time, next delivery extends it", func(t *testing.T) {
		f, _ := run(t, 15*time.Minute, time.Time{})
		d := r.delivery("td-2", "", 5)
		d.ltct = prev.Add(time.Hour)
		wantNot(t, r.deliver(t, f, "d2", d), id)
		if late := f.v.Tracker().Tick(prev.Add(time.Minute)); len(late) != 0 {
			t.Fatalf("late: %+v", late)
		}
	})
}

func TestTokenFailTerminate(t *testing.T) {
	r := newTokenRig(t)
	const id = "XBS-9.2.3-FAIL-TERMINATE"
	setup := func(t *testing.T) (*flow, string) {
		f := newFlow(t, newVerifier(r.p))
		n := nonce("failed-run")
		tokReq(f, "x1", tokURL, tokenRequest(t, r.dev, r.ri.ID(), n, "td-1", ""))
		clean(t, tokResp(f, "x1", tokURL, failure("AccessDenied")).Findings)
		return f, n
	}
	t.Run("a fresh nonce after the failure", func(t *testing.T) {
		f, _ := setup(t)
		wantNot(t, tokReq(f, "x2", tokURL, tokenRequest(t, r.dev, r.ri.ID(), nonce("fresh"), "td-2", "")).Findings, id)
	})
	t.Run("a request reuses the failed run's nonce", func(t *testing.T) {
		f, n := setup(t)
		wantMsg(t, tokReq(f, "x2", tokURL, tokenRequest(t, r.dev, r.ri.ID(), n, "td-2", "")).Findings, id, decode.SevWarning, "ended with AccessDenied")
	})
	t.Run("a report reuses it", func(t *testing.T) {
		f, n := setup(t)
		wantMsg(t, tokReq(f, "x2", reportURL, tokenReport(t, r.dev, r.ri.ID(), n, "td-1")).Findings, id, decode.SevWarning, "tokenRequest run")
	})
	t.Run("another device may use the same value", func(t *testing.T) {
		f, n := setup(t)
		wantNot(t, tokReq(f, "x2", tokURL, tokenRequest(t, r.p.Devices[1], r.ri.ID(), n, "td-2", "")).Findings, id)
	})
	t.Run("a delivery without a request revives it", func(t *testing.T) {
		f, n := setup(t)
		d := r.delivery("td-3", n, 5)
		m := decode.Decode(d.build(t), decode.Hint{})
		fs := f.v.Observe(Observation{Message: m, Time: f.tick(), Exchange: "lonely", Direction: decode.DirResponse})
		wantMsg(t, fs, id, decode.SevWarning, "answers no request")
	})
	t.Run("a successful run's nonce is no failed run's", func(t *testing.T) {
		f := newFlow(t, newVerifier(r.p))
		r.deliver(t, f, "ok", r.delivery("td-1", "", 5))
		wantNot(t, tokReq(f, "x2", tokURL, tokenRequest(t, r.dev, r.ri.ID(), nonce("ok"), "td-2", "")).Findings, id)
	})
	t.Run("ended by another kind of response", func(t *testing.T) {
		f := newFlow(t, newVerifier(r.p))
		n := nonce("ro-fail")
		tokReq(f, "x1", tokURL, tokenRequest(t, r.dev, r.ri.ID(), n, "td-1", ""))
		tokResp(f, "x1", tokURL, roapRoot("roResponse", decode.A("status", "Abort")).Bytes())
		wantMsg(t, tokReq(f, "x2", tokURL, tokenRequest(t, r.dev, r.ri.ID(), n, "td-2", "")).Findings, id, decode.SevWarning, "ended with Abort")
	})
}

// TestTokenStateBounds: a device's reporting state stays within its caps however long it talks.
func TestTokenStateBounds(t *testing.T) {
	r := newTokenRig(t)
	tr := NewTracker(TrackerOptions{Clock: func() time.Time { return t0 }})
	for i := 0; i < 100; i++ {
		n := nonce(fmt.Sprint("b", i))
		ex := fmt.Sprint("e", i)
		tr.Observe(Observation{Message: dec(tokenRequest(t, r.dev, r.ri.ID(), n, "", "")), Exchange: ex, Direction: decode.DirRequest})
		body := failure("AccessDenied")
		if i%2 == 0 {
			body = r.delivery(fmt.Sprint("td", i), n, 1).build(t)
		}
		tr.Observe(Observation{Message: decode.Decode(body, decode.Hint{Answers: "tokenRequest"}), Exchange: ex, Direction: decode.DirResponse})
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	ds, ok := tr.devices.get(r.dev.ID())
	if !ok {
		t.Fatal("no device state")
	}
	if len(ds.reporting) != maxReportTerms || len(ds.failed) != maxFailedRuns || len(ds.failedSeq) != maxFailedRuns {
		t.Fatalf("reporting %d (cap %d), failed %d/%d (cap %d)", len(ds.reporting), maxReportTerms, len(ds.failed), len(ds.failedSeq), maxFailedRuns)
	}
	if ds.deliveries != 50 {
		t.Fatalf("deliveries %d", ds.deliveries)
	}
}

// TestSimTokenRules runs the simulated token scenarios (2-pass, 1-pass, report and
// acknowledgement, refused report, missed deadline) through the tapping proxy: correct traffic
// raises none of the reporting rules above info, while the tracker really followed the terms.
func TestSimTokenRules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulated peers")
	}
	r := startSim(t)
	if err := r.run(t, sim.ScRegister, sim.ScTokens2Pass, sim.ScTokens1Pass, sim.ScTokenReportAck, sim.ScTokenReportError, sim.ScTokenNoReport); err != nil {
		t.Fatal(err)
	}
	fs := r.tap.findings()
	ours := map[string]bool{"XBS-9.2.3-NOREPORT-TIMING": true, "XBS-9.2.3-REPORT-ROUTING": true, "XBS-9.2.3-REPORT-TIMELINESS": true,
		"XBS-9.2.3-LTCT-ADVANCE": true, "XBS-9.2.3-FAIL-TERMINATE": true}
	classes := map[string]int{}
	for _, f := range fs {
		if !ours[f.Rule] {
			continue
		}
		t.Logf("%s %s: %s", f.Severity, f.Rule, f.Message)
		if f.Severity != decode.SevInfo || f.Rule == "XBS-9.2.3-NOREPORT-TIMING" {
			t.Errorf("%s %s %s: %s", f.Severity, f.Rule, f.Path, f.Message)
		}
		for _, c := range []string{"early", "on time", "late"} {
			if strings.Contains(f.Message, " is "+c+" against") {
				classes[c]++
			}
		}
	}
	// The acknowledged report came before its window, the report after the missed deadline
	// after it: both classifications prove the terms were followed.
	if classes["early"] == 0 || classes["late"] == 0 {
		t.Errorf("report classes %v;%s", classes, dump(fs))
	}
	// The RI's NoTokenConsumptionReport was seen and judged (it ended its run) without a finding.
	judged := false
	r.v.Tracker().mu.Lock()
	r.v.Tracker().devices.each(func(_ string, ds *deviceState) bool {
		for _, fr := range ds.failed {
			judged = judged || fr.status == "NoTokenConsumptionReport"
		}
		return true
	})
	r.v.Tracker().mu.Unlock()
	if !judged {
		t.Error("no NoTokenConsumptionReport was observed")
	}
	if late := r.v.Tracker().Tick(r.tap.clock().Add(time.Hour)); len(late) > 0 {
		t.Errorf("expectations left unmet: %+v", late)
	}
}
