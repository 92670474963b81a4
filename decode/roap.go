package decode

var (
	ruleLDReqShape = DefineRule("decode", "ROAP-LDREQ-SHAPE", SevError, "roap-core §5.9; sce-token §9 #43", "leaveDomainRequest children: deviceID, riID, nonce, time, domainID, certificateChain?, extensions?, signature")
	ruleLDRespShape = DefineRule("decode", "ROAP-LDRESP-SHAPE", SevError, "roap-core §5.10", "leaveDomainResponse on Success: nonce, domainID, extensions?")
)

func init() {
	registerKind("leaveDomainRequest", []string{NSROAP}, func(d *state, m *Message, root *Node) {
		m.Family, m.Role = FamilyROAP, RoleDevice
		f := Seq{Presence: ruleLDReqShape, Order: ruleLDReqShape, Where: "leaveDomainRequest"}.Check(d, m, root, []ElemSpec{
			M("deviceID", VIdentifier), M("riID", VIdentifier), M("nonce", VNonce), M("time", VDateTime),
			M("domainID", VDomainID), O("certificateChain", VChain), O("extensions", VExtensions), M("signature", VBase64),
		})
		setIDFrom(m, "deviceID", f.First("deviceID"))
		setIDFrom(m, "riID", f.First("riID"))
		m.setID("nonce", f.Text("nonce"))
		m.setID("domainID", f.Text("domainID"))
		if v, ok := root.Attr("triggerNonce"); ok {
			m.setID("triggerNonce", v)
		}
		signatureSpan(m, root)
	})
}
