package verify

import "github.com/roapproxy/roapproxy/decode"

// rule defines a verify rule, or reuses the catalogue entry when another package (decode) already
// defined the same ID: rule IDs come from the shared spec tables, and two packages that both
// implement a part of one rule must not crash the program at start-up (DefineRule panics on a
// duplicate). Findings that end up identical to one decode already reported are dropped later.
func rule(id string, sev decode.Severity, ref, check string) decode.Rule {
	if r, ok := decode.LookupRule(id); ok {
		return r
	}
	return decode.DefineRule("verify", id, sev, ref, check)
}

const (
	sevE = decode.SevError
	sevW = decode.SevWarning
	sevI = decode.SevInfo
)

// RuleInternal reports a bug in the verifier that a message triggered; the message is still
// forwarded and its other findings kept.
var RuleInternal = rule("VERIFY-INTERNAL", sevE, "README: limits", "The verifier failed on this message (a bug); the message passes unjudged")

// Signatures of ROAP and token PDUs.
var (
	RuleSig          = rule("ROAP-SIG", sevE, "roap-core §7.2", "The RSA signature of a signed ROAP PDU verifies (RSASSA-PSS, SHA-1, MGF1-SHA-1, salt 20) with the sender's key over what §7.2 says is signed")
	RuleSigReencoded = rule("ROAP-SIG-REENCODED", sevW, "roap-core §7.2 [B]", "The signature verifies only over the re-canonicalized message, not over the bytes as sent: the sender re-serialized after signing, which the canonical-transmission rule forbids")
	RuleSigPKCS1     = rule("ROAP-SIG-PKCS1", sevW, "roap-core §7.2", "The signature is PKCS#1 v1.5, not RSASSA-PSS (a deviation tolerated for display)")
	RuleSigSalt      = rule("ROAP-SIG-SALT", sevI, "roap-core §7.2", "The RSASSA-PSS signature verifies only with a salt length other than 20 (auto-detected)")
	RuleSigNoKey     = rule("ROAP-SIG-NOKEY", sevI, "roap-core §7.2, §8.1", "No certificate is known for the signer (no chain in the message, none cached for its ID): the signature cannot be checked")
	RuleSigNoContext = rule("ROAP-SIG-NOCONTEXT", sevI, "roap-core §7.2", "The signature covers earlier messages of the registration that were not captured: it cannot be checked")
	RuleSigWeakKey   = rule("ROAP-SIG-WEAKKEY", sevW, "roap-core §7.2", "The signer's RSA key is shorter than 1024 bits; Go only checks such signatures with GODEBUG=rsa1024min=0")
	RuleTDRSig       = rule("XBS-9.2.3-SIG", sevE, "seed 001 §9.2.3; sce-token §9 #75", "The TokenDeliveryResponse signature verifies with the RI key (RSA-PSS-Default over the message without its signature)")
	RuleLDRSig       = rule("DOM-7.5.2-LDR-SIG", sevE, "seed 000 §7.5.2; sce-token §9 #18", "The device signature of the leaveDomainRequest embedded in rdpProxyLeaveUserDomainRequest verifies; if not, the DEA must answer SignatureError")
)

// Signed ROAP triggers.
var (
	RuleTrigDigest = rule("ROAP-TRIG-DIGEST", sevE, "roap-core §6.4", "The DigestValue of a signed trigger equals SHA-1 over the canonical element its Reference names")
	RuleTrigMAC    = rule("ROAP-TRIG-MAC", sevI, "roap-core §6.4; sce-token §9 #48", "The HMAC of a signed trigger needs a key wrapped under the Domain Key (or device key): not checkable by a proxy")
)

// SCE MACs.
var (
	RuleMAC      = rule("GEN-MAC-SCOPE", sevE, "seed 000 §7.5.2, §7.5.3; sce-token §9 #5; docs/sce-mac.md", "The MAC of an RDP request or response verifies under the RI<->DEA context MK over the message without its signature element")
	RuleTrgMAC   = rule("DOM-7.6.1-MAC", sevE, "seed 000 §7.6.1; sce-token §9 #39; docs/sce-mac.md", "The MAC of the Proxy Leave User Domain drmTrigger verifies under the RI<->DEA context MK")
	RuleMACNoKey = rule("GEN-MAC-NOKEY", sevI, "sce-token §5.2; docs/sce-mac.md", "No MAC key (MK) is configured for this RI<->DEA context: the MAC is unverifiable, not failed")
	RuleMACForm  = rule("GEN-MAC-FORM", sevI, "sce-token §5.2; docs/sce-mac.md", "The MAC covers the bytes as sent rather than their exclusive canonical form (SCE-GEN's canonicalization is not public; both are accepted)")
	RuleMACAlg   = rule("GEN-MAC-ALG", sevW, "sce-token §5.2; docs/sce-mac.md", "The MAC verifies only with an HMAC hash other than the one configured for the context")
)

// Certificate chains.
var (
	RuleChainSig       = rule("CHAIN-SIG", sevE, "roap-core §3.4, §8", "Each certificate of a chain carries a valid signature by the next one (and the last by a trust anchor)")
	RuleChainOrder     = rule("CHAIN-ORDER", sevE, "roap-core §3.4; seed 000 §7.5.2", "A chain is leaf first and each certificate is issued (by name) by the next")
	RuleChainExpired   = rule("CHAIN-EXPIRED", sevE, "RFC 5280 §6.1.3", "A certificate of the chain has expired at the message time")
	RuleChainNotYet    = rule("CHAIN-NOTYETVALID", sevE, "RFC 5280 §6.1.3", "A certificate of the chain is not yet valid at the message time")
	RuleChainUntrusted = rule("CHAIN-UNTRUSTED", sevE, "roap-core §8.3", "The chain does not end at a configured trust anchor")
	RuleChainNoAnchors = rule("CHAIN-NOANCHORS", sevI, "README: verify --trust", "No trust anchors are configured: chains are checked link by link but not anchored")
	RuleChainKP        = rule("CHAIN-KEYPURPOSE", sevE, "roap-core §8.2; sce-token §4", "The end-entity certificate carries the OMA key purpose of its role (RI: oma-kp-rightsIssuer 2.23.43.6.1.1; device: oma-kp-drmAgent 2.23.43.6.1.2)")
	RuleChainCA        = rule("CHAIN-CA", sevE, "RFC 5280 §4.2.1.9, §6.1.4", "Issuing certificates are CA certificates (basic constraints, keyCertSign) within their path length")
	RuleChainID        = rule("CHAIN-ID-MISMATCH", sevE, "roap-core §3.2, §10", "riID / deviceID equals SHA-1 over the DER SubjectPublicKeyInfo of the leaf certificate")
	RuleChainWeak      = rule("CHAIN-WEAK", sevI, "roap-core §8; DESIGN pitfalls", "The chain uses SHA-1 signatures or 1024-bit RSA keys, as fielded DRM PKIs do (accepted)")
	RuleChainCritExt   = rule("CHAIN-CRITICAL-EXT", sevW, "RFC 5280 §4.2", "A certificate carries a critical extension this verifier does not process")
	RuleChainRoot      = rule("CHAIN-ROOT-INCLUDED", sevI, "roap-core §3.4", "The chain includes its root certificate, which senders normally leave out")
	RuleDevChainKP     = rule("DOM-7.5.2-DEVCHAIN-KP", sevE, "seed 000 §7.5.2; sce-token §9 #16", "For a proxied User Domain leave the device certificate carries oma-kp-drmAgent and NOT oma-kp-sceDrmAgent; otherwise the DEA must answer InvalidCertificateChain")
	RuleDevChainValid  = rule("DOM-7.5.2-CHAIN-VALID", sevE, "seed 000 §7.5.2; sce-token §9 #17", "The device chain of a proxied leave validates; otherwise the DEA must answer InvalidCertificateChain")
)

// OCSP.
var (
	RuleOCSPMissing   = rule("OCSP-MISSING", sevE, "roap-core §8.4", "A registrationResponse carries OCSP responses for the RI chain unless the device asked for NoOCSPResponse")
	RuleOCSPMalformed = rule("OCSP-MALFORMED", sevE, "RFC 6960 §4.2.1", "An ocspResponse parses as a successful BasicOCSPResponse")
	RuleOCSPSig       = rule("OCSP-SIG", sevE, "RFC 6960 §3.2", "The OCSP response signature verifies with the responder key")
	RuleOCSPResponder = rule("OCSP-RESPONDER", sevE, "RFC 6960 §4.2.2.2; roap-core §8.4", "The OCSP responder is the CA that issued the certificate, or a responder certificate issued by that CA with id-kp-OCSPSigning, valid at the message time")
	RuleOCSPCertID    = rule("OCSP-CERTID", sevE, "RFC 6960 §4.1.1; roap-core §8.4", "An OCSP response covers the RI leaf certificate (serial, issuer name and key hashes match)")
	RuleOCSPRevoked   = rule("OCSP-REVOKED", sevE, "roap-core §8.4", "The OCSP status of the RI certificate is revoked")
	RuleOCSPUnknown   = rule("OCSP-UNKNOWN", sevE, "roap-core §8.4", "The OCSP status of the RI certificate is unknown")
	RuleOCSPStale     = rule("OCSP-STALE", sevE, "RFC 6960 §4.2.2.1; roap-core §8.4", "thisUpdate <= message time <= nextUpdate (with skew); without nextUpdate, producedAt is within the configured maximum age")
	RuleOCSPNonce     = rule("OCSP-NONCE", sevE, "roap-core §8.4 [S]", "In a registrationResponse the OCSP nonce equals the device nonce of the registrationRequest (raw or OCTET STRING-wrapped)")
	RuleOCSPCoverage  = rule("OCSP-COVERAGE", sevI, "seed 001 §9.2.3; roap-core §8.4", "The OCSP set covers every certificate of the RI chain below the root (devices check only the leaf)")
	RuleTDROCSPGood   = rule("XBS-9.2.3-OCSP-GOOD", sevE, "seed 001 §9.2.3; sce-token §9 #74", "The OCSP set of a TokenDeliveryResponse says good for the RI chain and is time-valid; otherwise the device must not accept the tokens")
)

// Cross-message rules (Tracker).
var (
	RuleRegSession    = rule("ROAP-REG-SESSION", sevE, "roap-core §3.1, §9.2", "sessionId continuity: riHello -> registrationRequest -> registrationResponse carry the same sessionId")
	RuleNonceEcho     = rule("ROAP-NONCE-ECHO", sevE, "roap-core §9.2", "A ROAP response's nonce equals the nonce of the request it answers")
	RuleDeviceIDEcho  = rule("ROAP-DEVICEID-ECHO", sevE, "roap-core §9.2", "A ROAP response's deviceID equals the request's")
	RuleRIIDEcho      = rule("ROAP-RIID-ECHO", sevE, "roap-core §9.2", "A ROAP response's riID equals the request's")
	RuleDomainEcho    = rule("ROAP-DOMAIN-ECHO", sevE, "roap-core §5.8, §5.10", "A domain response names the domain of the request")
	RuleTriggerNonce  = rule("ROAP-TRIGGERNONCE", sevW, "roap-core §3.1, §9.2", "A request's triggerNonce equals the nonce of a trigger the device received (same RI, matching kind)")
	RuleLDTrigNonce   = rule("ROAP-LDREQ-TRIGGERNONCE", sevW, "sce-token §9 #44", "A leaveDomainRequest's triggerNonce equals the nonce of the ROAP leaveDomain trigger the device received")
	RuleTriggerURL    = rule("ROAP-TRIGGER-URL", sevW, "roap-core §9.2", "A triggered request is POSTed to the trigger's roapURL")
	RuleTDRDeviceEcho = rule("XBS-9.2.3-DEVICEID-ECHO", sevE, "seed 001 §9.2.3; sce-token §9 #58", "2-pass TokenDeliveryResponse: deviceID equals the request's")
	RuleTDRRIEcho     = rule("XBS-9.2.3-RIID-ECHO", sevE, "seed 001 §9.2.3; sce-token §9 #59", "2-pass TokenDeliveryResponse: riID equals the request's")
	RuleTDRNonceEcho  = rule("XBS-9.2.3-NONCE-ECHO", sevE, "seed 001 §9.2.3; sce-token §9 #63", "2-pass TokenDeliveryResponse: nonce equals the nonce of the TokenRequest or TokenConsumptionReport it answers")
	RuleTDIDMatch     = rule("XBS-9.2.3-TDID-MATCH", sevW, "seed 001 §9.2.3; sce-token §9 #60", "2-pass TokenDeliveryResponse: tokenDeliveryID should equal the one in the TokenRequest")
	RuleTDIDReplay    = rule("XBS-9.2.3-TDID-REPLAY", sevE, "seed 001 §9.2.3; sce-token §9 #61", "A tokenDeliveryID already delivered to this device must not come again (the device must discard it)")
	RuleTDRMode       = rule("XBS-9.2.3-MODE", sevI, "seed 001 Figure 1; sce-token §9 #50", "TokenDeliveryResponse mode: 2-pass (answers a TokenRequest or TokenConsumptionReport on the same exchange) or 1-pass (no request)")
	RuleQtyZero       = rule("XBS-9.2.3-QTY-ZERO-CONTEXT", sevW, "seed 001 §9.2.3; sce-token §9 #65", "tokenQuantity 0 is expected only in answer to a TokenConsumptionReport")
	RuleReportErr     = rule("XBS-9.2.3-REPORTERR-CONTEXT", sevW, "seed 001 §9.2.3; sce-token §9 #56", "TokenConsumptionReportError only answers a TokenConsumptionReport")
	RuleNoOCSPXReg    = rule("XBS-9.2.3-OCSP-NOOCSP-XREG", sevE, "seed 001 §9.2.3; sce-token §9 #79", "A TokenDeliveryResponse without OCSP responses needs a registration with this RI whose registrationRequest carried NoOCSPResponse")
	RuleCertChainCond = rule("XBS-9.2.3-CERTCHAIN-COND", sevE, "seed 001 §9.2.3; sce-token §9 #72", "A TokenDeliveryResponse carries certificateChain unless the TokenRequest's PeerKeyIdentifier named the RI's current key")
	RuleLDRVerbatim   = rule("DOM-7.5.2-LDR-VERBATIM", sevE, "seed 000 §7.5.2; sce-token §9 #12", "The leaveDomainRequest embedded in rdpProxyLeaveUserDomainRequest is byte-identical to the body the device POSTed to the RI")
	RuleLDRRIID       = rule("DOM-7.5.2-RIID-MATCH", sevE, "seed 000 §7.5.2; sce-token §9 #13", "rdpProxyLeaveUserDomainRequest reqID equals the riID inside the embedded leaveDomainRequest")
	RuleExpectStatus  = rule("DOM-7.5.2-EXPECTED-STATUS", sevW, "seed 000 §7.5.2; sce-token §9 #20", "The DEA's status matches what the device chain, key purposes and embedded signature predict (InvalidCertificateChain, SignatureError, InvalidDomain)")
	RuleRDPIDs        = rule("DOM-7.5.3-IDS-MIRROR", sevE, "seed 000 Table 17; sce-token §9 #23", "rdpProxyLeaveUserDomainResponse reqID/resID equal the request's")
	RuleRDPNonce      = rule("DOM-7.5.3-NONCE", sevW, "seed 000 Table 17 (SCE-GEN default, inferred); sce-token §9 #24", "rdpProxyLeaveUserDomainResponse nonce echoes the request nonce (inferred SCE-GEN default)")
	RuleRDPDomain     = rule("DOM-7.5.3-DOMAIN-MATCH", sevE, "seed 000 §7.5.3; sce-token §9 #26", "rdpProxyLeaveUserDomainResponse userDomainId equals the domainID of the embedded leaveDomainRequest")
	RuleRDPDevice     = rule("DOM-7.5.3-DEVICE-MATCH", sevE, "seed 000 §7.5.3; sce-token §9 #27", "rdpProxyLeaveUserDomainResponse deviceId equals the embedded request's deviceID and the device certificate's SPKI hash")
	RuleLDStatusEcho  = rule("DOM-7.5.3.2-STATUS-ECHO", sevE, "seed 000 §7.5.3.2; sce-token §9 #30", "ROAP leaveDomainResponse status equals the status of the RDP Proxy Leave response")
	RuleLDNonceEcho   = rule("DOM-7.5.3.2-NONCE-ECHO", sevE, "seed 000 §7.5.3.2; sce-token §9 #31", "ROAP leaveDomainResponse nonce equals the leaveDomainRequest nonce")
	RuleLDDomainEcho  = rule("DOM-7.5.3.2-DOMAIN-ECHO", sevE, "seed 000 §7.5.3.2; sce-token §9 #32", "ROAP leaveDomainResponse domainID equals the leaveDomainRequest domainID")
	RuleRIOrder       = rule("DOM-7.5.3.2-RI-ORDER", sevE, "seed 000 §7.5.3.2; sce-token §9 #29", "The RI answers the device only after a valid (MAC-verified) RDP Proxy Leave response")
	RuleUserDomain    = rule("DOM-7.5-USERDOMAIN-ONLY", sevW, "seed 000 §7.5; sce-token §9 #21", "A leave from a known User Domain is proxied to the DEA before the RI answers the device")
	RuleFanout        = rule("DOM-7.5-FANOUT", sevW, "seed 000 §7.5; sce-token §9 #34", "After a successful proxy leave the DEA sends rdpProxyLeaveUserDomain triggers to every other RI known to hold a context for (domain, device) within the configured window")
	RuleRejoin        = rule("DOM-7.5-REJOIN-BLOCK", sevE, "seed 000 §7.5; sce-token §9 #35", "No successful domain join for (domain, device) while its proxy leave is still incomplete at some RI")
	RuleTrgDirection  = rule("DOM-7.6.1-DIRECTION", sevW, "seed 000 §7.6; sce-token §9 #40", "The Proxy Leave User Domain drmTrigger flows only DEA -> RI; seen on a device connection it is misrouted")
	RuleTrigFollows   = rule("DOM-7.6.2-ROAP-TRIGGER-FOLLOWS", sevW, "seed 000 §7.6.2; sce-token §9 #41", "After a drmTrigger rdpProxyLeaveUserDomain the RI sends each listed device a ROAP leaveDomain (or extended) trigger for that domain within the configured window")
)

// Token reporting across messages (seed 001, Tracker). The reporting terms of a delivery bind the
// device's next report and the RI's next deliveries; these rules follow them per device and RI.
var (
	RuleNoReportTiming = rule("XBS-9.2.3-NOREPORT-TIMING", sevW, "seed 001 §9.2.3 (Figure 3); sce-token §9 #57", "NoTokenConsumptionReport is plausible only after the latestTokenConsumptionTime of an earlier delivery with a tokenReportingURL to that device, with no report from the device seen since")
	RuleReportRouting  = rule("XBS-9.2.3-REPORT-ROUTING", sevW, "seed 001 §9.2.3; sce-token §9 #69", "A tokenConsumptionReport is POSTed to the tokenReportingURL (scheme, host, path) of the last delivery from that RI to the device that carried one")
	RuleReportTimely   = rule("XBS-9.2.3-REPORT-TIMELINESS", sevI, "seed 001 §9.2.3; sce-token §9 #70", "Each tokenConsumptionReport is classified early (before earliestReportingTime), on time, or late (after latestReportingTime) against the delivery it reports")
	RuleLTCTAdvance    = rule("XBS-9.2.3-LTCT-ADVANCE", sevW, "seed 001 §9.2.3; sce-token §9 #71", "After an on-time report the answering (or next) delivery with a tokenReportingURL extends latestTokenConsumptionTime beyond the previous one, before that one passes; after an early report it may stay unchanged")
	RuleFailTerminate  = rule("XBS-9.2.3-FAIL-TERMINATE", sevW, "seed 001 §9.2.3; sce-token §9 #78", "After a non-Success status ends a token run (TokenRequest or TokenConsumptionReport), no later message reuses that run's nonce")
)
