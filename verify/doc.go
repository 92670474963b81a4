// Package verify judges decoded DRM messages: RSA signatures of ROAP and token PDUs, MACs of SCE
// messages, digests of signed triggers, certificate chains (walked by hand, because fielded DRM
// PKIs use SHA-1 and 1024-bit keys that crypto/x509 refuses), OCSP responses, and, in a Tracker,
// the rules that need earlier messages: nonce and identifier echoes, session continuity, trigger
// nonces, token delivery replays, and the seed 000 rules across the device<->RI and RI<->DEA legs.
//
// Findings carry stable rule IDs from the shared spec tables (ROAP-SIG, CHAIN-EXPIRED,
// XBS-9.2.3-TDID-REPLAY, DOM-7.5.3.2-STATUS-ECHO, …), defined in the decode catalogue. The clock
// is always injected: the time a message was seen judges validity and freshness, so a capture can
// be judged as of when it was made. Keys and trust anchors come from a Trust (LoadTrust,
// LoadKeys); a check that needs a key nobody supplied reports "unverifiable" (info), never a
// failure.
//
// Typical use:
//
//	trust, err := verify.LoadTrust("roots/")        // trust anchors
//	err = trust.LoadKeys("mk.txt")                     // SCE MAC keys, optional
//	v := verify.New(trust, verify.Options{})
//	fs := v.Check(msg, verify.Context{Time: seen})     // one message on its own
//	fs = v.Observe(verify.Observation{Message: msg, Time: seen, Exchange: id}) // with history
//	late := v.Tracker().Tick(time.Now())               // expectations that timed out
package verify
