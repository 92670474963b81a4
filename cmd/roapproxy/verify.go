package main

import (
	"context"
	"flag"
	"fmt"
	"time"

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
		in.stages = append(in.stages, func(_ context.Context, r *inspected) {
			res := v.Track(verify.Observation{Message: r.Msg, Time: when})
			r.Msg.Add(res.Findings...)
		})
		return nil
	}
}
