package verify

import (
	"crypto/x509"
	"strings"

	"github.com/roapproxy/roapproxy/decode"
)

// Reading values from messages. decode records the identifying values in Message.IDs; these
// helpers fall back to the field tree, so the verifier keeps working on kinds whose handler
// records fewer IDs, and on case drift between sources (deviceId / deviceID).

func kindIs(m *decode.Message, kinds ...string) bool {
	if m == nil {
		return false
	}
	for _, k := range kinds {
		if strings.EqualFold(m.Kind, k) {
			return true
		}
	}
	return false
}

// idOf returns an identifying value of m: IDs[key], else the first element of that name
// (case-insensitive) in the tree, as an identifier hash when it holds one, else its text, else
// its attribute of the same name (<domainID domainID="…"/>).
func idOf(m *decode.Message, key string) string {
	if m == nil {
		return ""
	}
	if v := m.ID(key); v != "" {
		return v
	}
	if m.Root == nil {
		return ""
	}
	if v, ok := m.Root.Attr(key); ok {
		return v
	}
	n := findDesc(m.Root, 6, key)
	if n == nil || n == m.Root {
		return ""
	}
	return valueOf(n, key)
}

func valueOf(n *decode.Node, attr string) string {
	if h := decode.IdentifierHash(n); h != "" {
		return h
	}
	if t := n.TextContent(); t != "" {
		return t
	}
	for _, a := range n.Attrs {
		if !a.IsNS && strings.EqualFold(a.Local, attr) {
			return a.Value
		}
	}
	return ""
}

// idsOf returns every value of a repeated identifier (the deviceIDs of a drmTrigger).
func idsOf(m *decode.Message, key, listKey string) []string {
	if v := m.ID(listKey); v != "" {
		return strings.Split(v, ",")
	}
	var out []string
	var walk func(n *decode.Node, depth int)
	walk = func(n *decode.Node, depth int) {
		if depth < 0 {
			return
		}
		for _, c := range n.Children {
			if c.Kind != decode.ElementNode {
				continue
			}
			if strings.EqualFold(c.Local, key) {
				if v := valueOf(c, key); v != "" {
					out = append(out, v)
				}
				continue
			}
			walk(c, depth-1)
		}
	}
	if m.Root != nil {
		walk(m.Root, 6)
	}
	if len(out) == 0 {
		if v := m.ID(key); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// domainOf returns the domain a message names: domainID (text or attribute form), or the
// userDomainId of an RDP response.
func domainOf(m *decode.Message) string {
	if v := idOf(m, "domainID"); v != "" {
		return v
	}
	return idOf(m, "userDomainId")
}

func statusOf(m *decode.Message) string {
	if m.Status != "" {
		return m.Status
	}
	if m.Root != nil {
		for _, a := range m.Root.Attrs {
			if !a.IsNS && strings.EqualFold(a.Local, "status") {
				return a.Value
			}
		}
	}
	return ""
}

func nonceOf(m *decode.Message) string {
	if v := m.ID("nonce"); v != "" {
		return v
	}
	if m.Root == nil {
		return ""
	}
	if n := m.Root.ChildFold("nonce"); n != nil {
		return n.TextContent()
	}
	if v, ok := m.Root.Attr("nonce"); ok {
		return v
	}
	return ""
}

func triggerNonceOf(m *decode.Message) string {
	if v := m.ID("triggerNonce"); v != "" {
		return v
	}
	v, _ := m.Root.Attr("triggerNonce")
	return v
}

func sessionOf(m *decode.Message) string {
	if v := m.ID("sessionId"); v != "" {
		return v
	}
	v, _ := m.Root.Attr("sessionId")
	return v
}

func childText(m *decode.Message, name string) string {
	if v := m.ID(name); v != "" {
		return v
	}
	if m.Root == nil {
		return ""
	}
	return m.Root.ChildFold(name).TextContent()
}

// roleOf returns the sender of m: what decode says, else the caller's hint, else what the kind
// implies.
func roleOf(m *decode.Message, hint decode.Role) decode.Role {
	if m.Role != decode.RoleUnknown {
		return m.Role
	}
	if hint != decode.RoleUnknown {
		return hint
	}
	switch {
	case kindIs(m, "deviceHello", "registrationRequest", "roRequest", "joinDomainRequest", "leaveDomainRequest",
		"meteringReportSubmit", "tokenRequest", "tokenConsumptionReport", "roUploadRequest"):
		return decode.RoleDevice
	case kindIs(m, "riHello", "registrationResponse", "roResponse", "joinDomainResponse", "leaveDomainResponse",
		"meteringReportResponse", "TokenDeliveryResponse", "roapTrigger", "rdpProxyLeaveUserDomainRequest"):
		return decode.RoleRI
	case kindIs(m, "rdpProxyLeaveUserDomainResponse", "drmTrigger"):
		return decode.RoleDEA
	}
	return decode.RoleUnknown
}

// chainNamed returns the chain of m held by an element called name (a root child when rootChild
// is set, anywhere otherwise), parsing it from the tree when decode did not.
func chainNamed(m *decode.Message, name string, rootChild bool) *decode.Chain {
	if m == nil || m.Root == nil {
		return nil
	}
	for i := range m.Chains {
		c := &m.Chains[i]
		if !strings.HasSuffix(c.Path, "/"+name) {
			continue
		}
		if rootChild && strings.Count(c.Path, "/") != 2 {
			continue
		}
		return c
	}
	var n *decode.Node
	if rootChild {
		n = m.Root.Child(name)
	} else {
		n = findDesc(m.Root, 6, name)
	}
	if n == nil {
		return nil
	}
	ch := &decode.Chain{Path: decode.PathOf(n)}
	for c := range n.EachNamed("certificate") {
		der, ok := b64(c.TextContent())
		if !ok {
			continue
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			continue
		}
		ch.Certs = append(ch.Certs, cert)
		ch.DER = append(ch.DER, der)
		if len(ch.Certs) >= maxChainLen {
			break
		}
	}
	if len(ch.Certs) == 0 {
		return nil
	}
	return ch
}

// ocspOf returns the OCSP responses carried by m (parsing the tree when decode did not).
func ocspOf(m *decode.Message) []decode.OCSPBlob {
	if len(m.OCSP) > 0 || m.Root == nil {
		return m.OCSP
	}
	var out []decode.OCSPBlob
	for n := range m.Root.EachNamed("ocspResponse") {
		if der, ok := b64(n.TextContent()); ok {
			out = append(out, decode.OCSPBlob{Path: decode.PathOf(n), DER: der})
		}
	}
	return out
}

// nestedLDR returns the leaveDomainRequest embedded in an RDP request.
func nestedLDR(m *decode.Message) *decode.Message {
	for _, n := range m.Nested {
		if kindIs(n, "leaveDomainRequest") {
			return n
		}
	}
	return nil
}

// signedKinds are the ROAP and token PDUs that carry an RSA signature (roap-core §7.2, sim
// contract); deviceHello, riHello and leaveDomainResponse are unsigned.
var signedKinds = []string{
	"registrationRequest", "registrationResponse", "roRequest", "roResponse", "joinDomainRequest",
	"joinDomainResponse", "leaveDomainRequest", "meteringReportSubmit", "meteringReportResponse",
	"tokenRequest", "tokenConsumptionReport", "TokenDeliveryResponse", "roUploadRequest", "roUploadResponse",
}
