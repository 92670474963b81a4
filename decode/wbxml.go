package decode

// looksWBXML reports whether body starts like a WBXML 1.3 ROAP trigger (03 13 6A).
func looksWBXML(body []byte) bool {
	return len(body) >= 3 && body[0] == 0x03 && body[1] == 0x13 && body[2] == 0x6A
}

// decodeWBXMLTrigger is replaced by the WBXML decoder.
func decodeWBXMLTrigger(d *state, m *Message, body []byte) {
	m.Reason = "WBXML not yet decoded"
}
