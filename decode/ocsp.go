package decode

import (
	"encoding/asn1"
	"encoding/base64"
	"strconv"
)

// OCSP bodies (RFC 6960 over HTTP) travel beside DRM traffic: RIs fetch responses for their
// chains, bound to the device nonce during registration. They are shown as their own family so a
// person sees "OCSP request / response: successful" rather than "not XML".

// FamilyOCSP is OCSP over HTTP.
const FamilyOCSP Family = "ocsp"

// RoleOCSP is an OCSP responder.
const RoleOCSP Role = "ocsp-responder"

var (
	ruleOCSPBody = DefineRule("decode", "DEC-OCSP-BODY", SevError, "RFC 6960 §4", "A body labelled as an OCSP request or response is not one")
	ruleOCSPFail = DefineRule("decode", "OCSP-RESPONSE-STATUS", SevWarning, "RFC 6960 §4.2.1", "The OCSP responder answered with an error status instead of a response")
)

var ocspStatusNames = map[int]string{0: "successful", 1: "malformedRequest", 2: "internalError", 3: "tryLater", 5: "sigRequired", 6: "unauthorized"}

// ocspRequestASN1 reads an OCSPRequest down to the nonce extension of its TBSRequest.
type ocspRequestASN1 struct {
	TBS struct {
		Version    int           `asn1:"optional,explicit,tag:0,default:0"`
		Requestor  asn1.RawValue `asn1:"optional,explicit,tag:1"`
		List       []asn1.RawValue
		Extensions []struct {
			ID       asn1.ObjectIdentifier
			Critical bool `asn1:"optional"`
			Value    []byte
		} `asn1:"optional,explicit,tag:2"`
	}
	Sig asn1.RawValue `asn1:"optional,explicit,tag:0"`
}

var oidOCSPNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}

func decodeOCSP(m *Message, body []byte, request bool) {
	m.Family = FamilyOCSP
	if request {
		m.Kind, m.Role = "ocspRequest", RoleUnknown
		var r ocspRequestASN1
		if rest, err := asn1.Unmarshal(body, &r); err != nil || len(rest) != 0 {
			m.Add(ruleOCSPBody.At("", "body (%d bytes) is not a DER OCSPRequest", len(body)))
			return
		}
		m.setID("certificates", strconv.Itoa(len(r.TBS.List)))
		for _, e := range r.TBS.Extensions {
			if e.ID.Equal(oidOCSPNonce) {
				m.setID("nonce", base64.StdEncoding.EncodeToString(e.Value))
			}
		}
		return
	}
	m.Kind, m.Role = "ocspResponse", RoleOCSP
	var r ocspResponseASN1
	if rest, err := asn1.Unmarshal(body, &r); err != nil || len(rest) != 0 {
		m.Add(ruleOCSPBody.At("", "body (%d bytes) is not a DER OCSPResponse", len(body)))
		return
	}
	name := ocspStatusNames[int(r.Status)]
	if name == "" {
		name = "status " + strconv.Itoa(int(r.Status))
	}
	m.Status = name
	if r.Status != 0 {
		m.Add(ruleOCSPFail.At("", "the responder answered %s", name))
		return
	}
	m.OCSP = append(m.OCSP, OCSPBlob{Path: "", DER: body})
}
