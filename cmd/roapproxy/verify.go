package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/roapproxy/roapproxy/decode"

	"github.com/roapproxy/roapproxy/intercept"
	"github.com/roapproxy/roapproxy/verify"
)

// Verification wiring: the proxy's judge, and inspect's --trust, --keys, --at and --no-verify.

func init() {
	judgeFactory = func(o *proxyOptions) (intercept.Judge, error) {
		trust, err := loadTrust(o.Trust, o.Keys)
		if err != nil {
			return nil, err
		}
		return intercept.NewVerifyJudge(verify.New(trust, verify.Options{})), nil
	}
	inspectOptions = append(inspectOptions, inspectVerifyOption)
}

func loadTrust(paths []string, keys string) (*verify.Trust, error) {
	trust, err := verify.LoadTrust(paths...)
	if err != nil {
		return nil, fmt.Errorf("--trust: %w", err)
	}
	if keys != "" {
		if err := trust.LoadKeys(keys); err != nil {
			return nil, fmt.Errorf("--keys: %w", err)
		}
	}
	return trust, nil
}

func inspectVerifyOption(fs *flag.FlagSet) func(*inspector) error {
	var trustPaths listFlag
	fs.Var(&trustPaths, "trust", "trust anchors: PEM `file or folder` (repeatable)")
	keys := fs.String("keys", "", "SCE MAC keys `file` (lines: ID-or-pair hexMK [hmac-sha1|hmac-sha256]; see docs/sce-mac.md)")
	at := fs.String("at", "", "judge certificate validity and OCSP freshness at this `RFC3339` time (default: now)")
	noVerify := fs.Bool("no-verify", false, "decode only: no signature, chain, OCSP or cross-message checks")
	return func(in *inspector) error {
		if *noVerify {
			return nil
		}
		var when time.Time
		if *at != "" {
			t, err := time.Parse(time.RFC3339, *at)
			if err != nil {
				return fmt.Errorf("--at %q: want an RFC3339 time such as 2011-07-05T10:00:00Z", *at)
			}
			when = t
		}
		trust, err := loadTrust(trustPaths, *keys)
		if err != nil {
			return err
		}
		opts := verify.Options{}
		if !when.IsZero() {
			opts.Clock = func() time.Time { return when }
		}
		// One verifier for the whole run: the files are one conversation, in the order given, so
		// the cross-message rules see each message after the ones before it.
		v := verify.New(trust, opts)
		var conv conversation
		byKey := map[string]*inspected{} // correlation key → the file that carried it last
		in.stages = append(in.stages, func(_ context.Context, r *inspected) {
			dir, exchange := conv.place(r.Msg.Kind)
			res := v.Track(verify.Observation{Message: r.Msg, Time: when, Direction: dir, Exchange: exchange})
			r.Msg.Add(res.Findings...)
			for _, k := range append([]string{res.Correlation}, res.Joins...) {
				if k != "" {
					byKey[k] = r
				}
			}
		})
		// The conversation is over: whatever was still expected (a ROAP leave trigger after a
		// drmTrigger, the DEA's fan-out to the other RIs) never came. Report it on the file that
		// raised the expectation.
		in.finishers = append(in.finishers, func() {
			end := time.Now()
			if !when.IsZero() {
				end = when
			}
			for _, p := range v.Tracker().Tick(end.Add(365 * 24 * time.Hour)) {
				if r := byKey[p.Key]; r != nil {
					r.Msg.Add(p.Finding)
				}
			}
		})
		return nil
	}
}

// answers maps each response kind to the request kinds it answers.
var answers = map[string][]string{
	"riHello": {"deviceHello"}, "registrationResponse": {"registrationRequest"}, "roResponse": {"roRequest"},
	"joinDomainResponse": {"joinDomainRequest"}, "leaveDomainResponse": {"leaveDomainRequest"},
	"meteringReportResponse": {"meteringReportSubmit"}, "roUploadResponse": {"roUploadRequest"},
	"TokenDeliveryResponse": {"tokenRequest", "tokenConsumptionReport"},
}

// conversation pairs the files of an inspect run into HTTP exchanges, which files do not record:
// a response belongs to the latest unanswered request of a kind it answers. Files of other kinds
// (OCSP bodies, pushed triggers) between them do not disturb the pairing.
type conversation struct {
	open []openRequest
	n    int
}

type openRequest struct{ kind, exchange string }

func (c *conversation) place(kind string) (decode.Direction, string) {
	if reqs, ok := answers[kind]; ok {
		for i := len(c.open) - 1; i >= 0; i-- {
			if slices.Contains(reqs, c.open[i].kind) {
				ex := c.open[i].exchange
				c.open = append(c.open[:i], c.open[i+1:]...)
				return decode.DirResponse, ex
			}
		}
		return decode.DirResponse, "" // answers nothing seen: pushed (1-pass)
	}
	if strings.HasPrefix(kind, "rdp") && strings.HasSuffix(kind, "Response") {
		req := strings.TrimSuffix(kind, "Response") + "Request"
		for i := len(c.open) - 1; i >= 0; i-- {
			if c.open[i].kind == req {
				ex := c.open[i].exchange
				c.open = append(c.open[:i], c.open[i+1:]...)
				return decode.DirResponse, ex
			}
		}
		return decode.DirResponse, ""
	}
	for _, reqs := range answers {
		if slices.Contains(reqs, kind) {
			return c.open1(kind)
		}
	}
	if strings.HasPrefix(kind, "rdp") && strings.HasSuffix(kind, "Request") {
		return c.open1(kind)
	}
	return decode.DirUnknown, ""
}

func (c *conversation) open1(kind string) (decode.Direction, string) {
	c.n++
	ex := fmt.Sprintf("file-%d", c.n)
	c.open = append(c.open, openRequest{kind, ex})
	if len(c.open) > 256 { // bounded: a capture of requests that never got answers
		c.open = c.open[1:]
	}
	return decode.DirRequest, ex
}
