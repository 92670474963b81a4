package decode

import (
	"testing"
	"time"
)

// Throughput of the decode path on realistic messages. The target is 20,000 messages per second
// per core for both decode benchmarks:
//
//	go test ./decode -run '^$' -bench . -benchtime 2s -cpu 1
//
// Besides ns/op, B/op and allocs/op each decode benchmark reports msgs/s and x-parse: how many
// times longer a full Decode takes than ParseXML alone on the same body, measured in the same
// process right after the decode loop (the rest is handler work: certificates, OCSP, rules).

type fxBenchCase struct {
	name string
	body []byte
	hint Hint
	kind string
}

func fxBenchCases(b *testing.B) []fxBenchCase {
	b.Helper()
	ro := fxRORequest(b)
	if n := len(ro); n < 2500 || n > 3500 {
		b.Fatalf("the benchmark roRequest is %d bytes; it should be a realistic 2.5-3.5 KB", n)
	}
	return []fxBenchCase{
		{"roRequest", ro, Hint{ContentType: MIMEPDU, Direction: DirRequest}, "roRequest"},
		{"TokenDeliveryResponse", fxTokenDeliveryResponse(b), Hint{ContentType: MIMEPDU, Direction: DirResponse, Answers: "tokenRequest"}, "TokenDeliveryResponse"},
	}
}

func fxBenchDecode(b *testing.B, c fxBenchCase) {
	m := Decode(c.body, c.hint)
	if m.Kind != c.kind || m.Worst() == SevError {
		// The handlers are written in parallel with this benchmark; until they exist it
		// measures the unknown-root path, which is worth knowing but not the target.
		b.Logf("%s decodes as kind %q with %v", c.name, m.Kind, fxFindingIDs(m))
	}
	b.SetBytes(int64(len(c.body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Decode(c.body, c.hint)
	}
	b.StopTimer()
	decodeNs := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")

	// ParseXML alone on the same body, for the ratio: a quarter as many runs as the decode loop
	// (at least 20 ms' worth, so the figure is stable when b.N is small).
	runs := 0
	start := time.Now()
	for time.Since(start) < 20*time.Millisecond || runs < b.N/4 {
		if _, err := ParseXML(c.body, DefaultLimits); err != nil {
			b.Fatal(err)
		}
		runs++
	}
	parseNs := float64(time.Since(start).Nanoseconds()) / float64(runs)
	b.ReportMetric(decodeNs/parseNs, "x-parse")
}

func BenchmarkDecodeRORequest(b *testing.B) {
	fxBenchDecode(b, fxBenchCases(b)[0])
}

func BenchmarkDecodeTokenDeliveryResponse(b *testing.B) {
	fxBenchDecode(b, fxBenchCases(b)[1])
}

func BenchmarkParseXML(b *testing.B) {
	for _, c := range fxBenchCases(b) {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := ParseXML(c.body, DefaultLimits); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkCanonical measures what signature checking costs on top of parsing: the canonical
// form of a parsed message without its signature element.
func BenchmarkCanonical(b *testing.B) {
	for _, c := range fxBenchCases(b) {
		doc, err := ParseXML(c.body, DefaultLimits)
		if err != nil {
			b.Fatal(err)
		}
		root := doc.Root
		skip := func(n *Node) bool { return n.Parent == root && n.Local == "signature" }
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				Canonical(root, skip)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
