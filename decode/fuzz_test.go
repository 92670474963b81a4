package decode

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// Fuzz targets for the foundation: Decode as a whole and the scanner/canonicalizer pair.
//
//	go test ./decode -run '^$' -fuzz FuzzDecode -fuzztime 20s
//	go test ./decode -run '^$' -fuzz FuzzParseXML -fuzztime 20s

var fxFuzzContentTypes = []string{
	"", MIMEPDU, MIMETrig, MIMEWBXML, MIMERO, "application/xml", "text/html; charset=utf-8", "application/octet-stream",
}

// fxFuzzSeeds are small inputs that reach the interesting corners quickly.
var fxFuzzSeeds = []string{
	``,
	`<r/>`,
	"\xEF\xBB\xBF<?xml version=\"1.0\"?><!--c--><r a='1'>t<![CDATA[x]]><?p d?></r>",
	`<p:r xmlns:p="urn:p" xmlns="urn:d"><c xmlns=""><p:d p:a="1" b="2"/></c></p:r>`,
	`<r xmlns:a="urn:z" xmlns:b="urn:a" a:x="1" b:y="2" z="&#9;&#10;&#13;&lt;&amp;&quot;"/>`,
	`<roap:leaveDomainRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0"><deviceID/><signature>AA==</signature></roap:leaveDomainRequest>`,
	`<roap:TokenDeliveryResponse xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success"><signature/></roap:TokenDeliveryResponse>`,
	`<roap:roapTrigger xmlns:roap="urn:oma:bac:dldrm:roap-1.0"><k xsi:type="roap:X"/></roap:roapTrigger>`,
	"<!DOCTYPE r [<!ENTITY a \"b\">]><r>&a;</r>",
	"\x03\x13\x6a\x00",
	"<a>&#x10FFFF;&#xD7FF;\r\n</a>",
}

// fxFuzzCorpus adds the shared vectors, two built messages and the inline seeds.
func fxFuzzCorpus(f *testing.F) [][]byte {
	var out [][]byte
	for _, s := range fxFuzzSeeds {
		out = append(out, []byte(s))
	}
	for _, p := range fxVectorFiles(f) {
		if raw, err := os.ReadFile(p); err == nil {
			out = append(out, raw)
		}
	}
	out = append(out, fxRORequest(f), fxTokenDeliveryResponse(f))
	return out
}

func FuzzDecode(f *testing.F) {
	for i, b := range fxFuzzCorpus(f) {
		f.Add(b, uint8(i), uint8(i/len(fxFuzzContentTypes)))
	}
	f.Fuzz(func(t *testing.T, body []byte, ct, flags uint8) {
		h := Hint{
			ContentType: fxFuzzContentTypes[int(ct)%len(fxFuzzContentTypes)],
			Direction:   Direction(flags % 3),
			Pushed:      flags&4 != 0,
		}
		if flags&8 != 0 {
			h.Answers = []string{"tokenRequest", "roRequest", "leaveDomainRequest", "deviceHello"}[(flags>>4)%4]
		}
		m := Decode(body, h)
		fxCheckMessage(t, m, body)
		if m.Root != nil {
			fxCheckCanonicalFixedPoint(t, m.Root)
		}
		// The same body decoded into the memory of its recycled tree decodes the same.
		before := fxSnap(m)
		if !Recycle(m) {
			t.Fatal("Recycle refused a message nobody holds")
		}
		again := Decode(body, h)
		if !fxSnap(again).equal(before) {
			t.Fatal("decoding into a recycled tree gave another result")
		}
		Recycle(again)
	})
}

func FuzzParseXML(f *testing.F) {
	for _, b := range fxFuzzCorpus(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		doc, err := ParseXML(body, DefaultLimits)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error is not a *SyntaxError: %T %v", err, err)
			}
			if se.Offset < 0 || se.Offset > len(body) {
				t.Fatalf("error offset %d outside the %d-byte body: %v", se.Offset, len(body), se)
			}
			if doc != nil {
				t.Fatal("a document returned with an error")
			}
			return
		}
		if doc.Root == nil || !bytes.Equal(doc.Raw, body) {
			t.Fatal("no root or Raw is not the body")
		}
		count := 0
		fxWalk(doc.Root, func(n *Node) {
			count++
			fxCheckNodeSpan(t, body, n)
		})
		if count != doc.Nodes {
			t.Fatalf("Nodes = %d, the tree holds %d", doc.Nodes, count)
		}
		fxCheckCanonicalFixedPoint(t, doc.Root)
	})
}

// fxCheckMessage checks the invariants every decoded message keeps, nested ones included.
func fxCheckMessage(t *testing.T, m *Message, body []byte) {
	t.Helper()
	if m == nil {
		t.Fatal("Decode returned nil")
	}
	if m.Kind == "" || m.Family == "" {
		t.Fatalf("empty kind %q or family %q", m.Kind, m.Family)
	}
	if strings.Contains(m.Reason, "internal decoder error") {
		t.Fatalf("decoder panicked: %v", m.Findings)
	}
	if !bytes.Equal(m.Raw, body) {
		t.Fatal("Raw is not the body")
	}
	if m.Family == FamilyUnknown && m.Reason == "" && len(m.Findings) == 0 {
		t.Fatal("unknown message without a reason or a finding")
	}
	worst := 0
	for _, fd := range m.Findings {
		r, ok := LookupRule(fd.Rule)
		if !ok || fd.Rule == "" {
			t.Fatalf("finding with an unknown rule %q: %+v", fd.Rule, fd)
		}
		if fd.Severity.Rank() == 0 || fd.Message == "" {
			t.Fatalf("finding without severity or message: %+v", fd)
		}
		if fd.Ref != r.Ref {
			t.Fatalf("finding %s carries ref %q, the rule says %q", fd.Rule, fd.Ref, r.Ref)
		}
		worst = max(worst, fd.Severity.Rank())
	}
	if len(m.Nested) == 0 && m.Worst().Rank() != worst {
		t.Fatalf("Worst() = %q for findings %v", m.Worst(), fxFindingIDs(m))
	}
	if s := m.Signature; s != nil {
		if s.Start < 0 || s.End > len(body) || s.Start >= s.End {
			t.Fatalf("signature span %d..%d outside the %d-byte body", s.Start, s.End, len(body))
		}
		var sig *Node
		if m.Root != nil {
			fxWalk(m.Root, func(n *Node) {
				if n.Kind == ElementNode && n.Start == s.Start && n.End == s.End {
					sig = n
				}
			})
		}
		if sig == nil || !strings.EqualFold(sig.Local, "signature") {
			t.Fatalf("signature span %d..%d does not cut a <signature> element: %q", s.Start, s.End, body[s.Start:s.End])
		}
		if !bytes.HasPrefix(body[s.Start:], []byte("<"+sig.QName())) || !bytes.HasSuffix(body[:s.End], []byte(">")) {
			t.Fatalf("signature span bytes %q", body[s.Start:s.End])
		}
		if got := m.SignedBytes(); len(got) != len(body)-(s.End-s.Start) {
			t.Fatalf("SignedBytes is %d bytes", len(got))
		}
	}
	for _, n := range m.Nested {
		if n == nil {
			t.Fatal("nil nested message")
		}
		fxCheckMessage(t, n, n.Raw)
	}
}

// fxCheckNodeSpan checks that a parsed node's offsets lie in the body and delimit its markup.
func fxCheckNodeSpan(t *testing.T, body []byte, n *Node) {
	t.Helper()
	if n.Start < 0 || n.End > len(body) || n.Start > n.End {
		t.Fatalf("node span %d..%d outside the %d-byte body", n.Start, n.End, len(body))
	}
	switch n.Kind {
	case ElementNode:
		if !(n.Start < n.Inner && n.Inner <= n.InnerEnd && n.InnerEnd <= n.End) {
			t.Fatalf("<%s> offsets %d %d %d %d out of order", n.QName(), n.Start, n.Inner, n.InnerEnd, n.End)
		}
		if !bytes.HasPrefix(body[n.Start:], []byte("<"+n.QName())) || body[n.Inner-1] != '>' || body[n.End-1] != '>' {
			t.Fatalf("<%s> span %q", n.QName(), body[n.Start:n.End])
		}
		if n.InnerEnd < n.End && !bytes.HasPrefix(body[n.InnerEnd:], []byte("</"+n.QName())) {
			t.Fatalf("<%s> end tag %q", n.QName(), body[n.InnerEnd:n.End])
		}
		for _, c := range n.Children {
			if c.Parent != n || c.Start < n.Inner || c.End > n.InnerEnd {
				t.Fatalf("child of <%s> at %d..%d outside its content %d..%d", n.QName(), c.Start, c.End, n.Inner, n.InnerEnd)
			}
		}
	case PINode:
		if !bytes.HasPrefix(body[n.Start:], []byte("<?")) || !bytes.HasSuffix(body[:n.End], []byte("?>")) {
			t.Fatalf("PI span %q", body[n.Start:n.End])
		}
	}
}

// fxCheckCanonicalFixedPoint: the canonical form of a parsed tree parses, and canonicalizing it
// again changes nothing. The reparse gets room to grow: canonical form expands empty tags and
// re-declares namespaces on every element that uses them.
func fxCheckCanonicalFixedPoint(t *testing.T, root *Node) {
	t.Helper()
	c1 := Canonical(root, nil)
	lim := DefaultLimits
	lim.MaxBytes, lim.MaxTextSize, lim.MaxAttrs = 1<<30, 1<<30, 4*lim.MaxAttrs
	doc, err := ParseXML(c1, lim)
	if err != nil {
		t.Fatalf("canonical form does not parse: %v\n%q", err, c1)
	}
	if doc.Prolog || doc.BOM || doc.Comments {
		t.Fatal("canonical form has a prolog, BOM or comments")
	}
	if c2 := Canonical(doc.Root, nil); !bytes.Equal(c1, c2) {
		t.Fatalf("canonical form is not a fixed point\n once %q\ntwice %q", c1, c2)
	}
}
