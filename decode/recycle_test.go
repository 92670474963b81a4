package decode

import (
	"bytes"
	"os"
	"slices"
	"testing"
)

// fxSnapshot is what a decoded message says, taken while its tree is alive.
type fxSnapshot struct {
	kind, variant string
	ids           map[string]string
	findings      []string
	canonical     []byte
}

func fxSnap(m *Message) fxSnapshot {
	s := fxSnapshot{kind: m.Kind, variant: m.Variant, ids: map[string]string{}, findings: fxFindingIDs(m)}
	for k, v := range m.IDs {
		s.ids[k] = v
	}
	if m.Root != nil {
		s.canonical = Canonical(m.Root, nil)
	}
	return s
}

func (s fxSnapshot) equal(o fxSnapshot) bool {
	if s.kind != o.kind || s.variant != o.variant || !slices.Equal(s.findings, o.findings) || !bytes.Equal(s.canonical, o.canonical) || len(s.ids) != len(o.ids) {
		return false
	}
	for k, v := range s.ids {
		if o.ids[k] != v {
			return false
		}
	}
	return true
}

// fxRecycleBodies are messages of different sizes and kinds, so arenas made for one are
// reused by the others.
func fxRecycleBodies(t *testing.T) [][]byte {
	out := [][]byte{fxRORequest(t), fxTokenDeliveryResponse(t)}
	for _, p := range fxVectorFiles(t) {
		if raw, err := os.ReadFile(p); err == nil {
			out = append(out, raw)
		}
	}
	return out
}

func TestRecycledTreesAreReusedAndDecodeTheSame(t *testing.T) {
	defer SetRecycleMode(SetRecycleMode(RecycleOn))
	bodies := fxRecycleBodies(t)
	// What each body decodes to with no reuse at all.
	want := make([]fxSnapshot, len(bodies))
	prev := SetRecycleMode(RecycleOff)
	for i, b := range bodies {
		m := Decode(b, Hint{})
		want[i] = fxSnap(m)
		Recycle(m)
	}
	SetRecycleMode(prev)

	reused := 0
	var lastRoot *Node
	for round := 0; round < 3; round++ {
		for i, b := range bodies {
			m := Decode(b, Hint{})
			if m.Root != nil && m.Root == lastRoot {
				reused++ // the arena the previous message gave back (the free list is a stack)
			}
			got := fxSnap(m)
			if !got.equal(want[i]) {
				t.Fatalf("round %d, body %d (%s): decoded differently from a tree in fresh memory:\n got %+v\nwant %+v", round, i, want[i].kind, got, want[i])
			}
			kind, ids := m.Kind, m.IDs
			lastRoot = m.Root
			if !Recycle(m) {
				t.Fatalf("body %d: Recycle refused a message nobody holds", i)
			}
			if m.Root != nil || m.Doc != nil {
				t.Fatal("Recycle left Root or Doc set")
			}
			// Strings taken from the tree point into the body, not into the nodes.
			if kind != want[i].kind {
				t.Fatalf("kind changed to %q after Recycle", kind)
			}
			for k, v := range want[i].ids {
				if ids[k] != v {
					t.Fatalf("ID %s = %q after Recycle, want %q", k, ids[k], v)
				}
			}
		}
	}
	if reused == 0 {
		t.Fatal("no decode reused the memory of a recycled tree")
	}
}

func TestHeldMessagesAreNotRecycled(t *testing.T) {
	defer SetRecycleMode(SetRecycleMode(RecyclePoison))
	m := Decode(fxRORequest(t), Hint{})
	if m.Root == nil {
		t.Fatalf("no tree: %v", m.Findings)
	}
	want := fxSnap(m)
	root := m.Root
	m.Hold()
	m.Hold()
	if Recycle(m) {
		t.Fatal("Recycle took a held message")
	}
	m.Release()
	if Recycle(m) || m.Root != root || !fxSnap(m).equal(want) {
		t.Fatal("Recycle took, or changed, a message still held once")
	}
	m.Release()
	if !Recycle(m) {
		t.Fatal("Recycle refused a released message")
	}
	// Poison mode: a node used after its message was recycled says so.
	if root.Kind != KindRecycled || root.Local != PoisonText || root.Children != nil {
		t.Fatalf("recycled root reads %+v, want poison", *root)
	}
	again := Decode(fxRORequest(t), Hint{})
	if again.Root == root {
		t.Fatal("poison mode reused a recycled tree")
	}
}

func TestAHeldNestedMessageKeepsItsParent(t *testing.T) {
	parent := &Message{Nested: []*Message{Decode(fxRORequest(t), Hint{})}}
	parent.Nested[0].Hold()
	if Recycle(parent) {
		t.Fatal("Recycle took a message whose nested message is held")
	}
	if parent.Nested[0].Root == nil {
		t.Fatal("the held nested message lost its tree")
	}
}

// A document that fails to parse hands its arena back at once; the next parse must not see
// any of its nodes.
func TestAFailedParseLeavesNothingBehind(t *testing.T) {
	defer SetRecycleMode(SetRecycleMode(RecycleOn))
	for getArena() != nil {
	}
	bad := append(bytes.Clone(fxRORequest(t)[:2000]), "</nope>"...)
	if _, err := ParseXML(bad, DefaultLimits); err == nil {
		t.Fatal("a cut message parsed")
	}
	// Its arena is back for reuse, with nothing of the failed document left in it.
	arenas.Lock()
	free := append([]*arena(nil), arenas.free...)
	arenas.Unlock()
	if len(free) != 1 {
		t.Fatalf("%d arenas free after one failed parse, want 1", len(free))
	}
	for i, n := range free[0].nodes {
		if n.Parent != nil || n.Children != nil || n.Local != "" || n.Text != "" {
			t.Fatalf("node %d of the failed document is still in its arena: %+v", i, n)
		}
	}
	good := fxRORequest(t)
	m := Decode(good, Hint{})
	prev := SetRecycleMode(RecycleOff)
	fresh := Decode(good, Hint{})
	SetRecycleMode(prev)
	if !fxSnap(m).equal(fxSnap(fresh)) {
		t.Fatal("a parse after a failed one differs from one in fresh memory")
	}
}

// fxWide is a well-formed document of about n element nodes.
func fxWide(n int) []byte {
	var b bytes.Buffer
	b.WriteString("<r>")
	for i := 0; i < n; i++ {
		b.WriteString("<c/>")
	}
	b.WriteString("</r>")
	return b.Bytes()
}

// One large document must not size the arenas of everything after it, and what waits for
// reuse stays bounded however large the documents were (traffic is hostile).
func TestArenasStayBoundedAfterLargeDocuments(t *testing.T) {
	defer SetRecycleMode(SetRecycleMode(RecycleOn))
	small := fxRORequest(t)
	Recycle(Decode(small, Hint{}))
	smallNeed := wantNodes.Load()

	Recycle(Decode(fxWide(1500), Hint{}))
	if w := wantNodes.Load(); w < 1500 {
		t.Fatalf("want %d nodes after a 1,500-node document", w)
	}
	for i := 0; i < 100; i++ {
		Recycle(Decode(small, Hint{}))
	}
	if w := wantNodes.Load(); w > 2*smallNeed+16 {
		t.Fatalf("fresh arenas still sized for %d nodes after 100 small documents (a small one needs %d)", w, smallNeed)
	}

	// Past the maxima an arena is neither kept nor counted.
	before := wantNodes.Load()
	Recycle(Decode(fxWide(maxArenaNodes+100), Hint{}))
	if w := wantNodes.Load(); w > before {
		t.Fatalf("a %d-node document raised the wanted size to %d", maxArenaNodes+100, w)
	}

	// Many large arenas recycled at once: the stack keeps at most maxFreeBytes of them.
	var ms []*Message
	for i := 0; i < 40; i++ {
		ms = append(ms, Decode(fxWide(1800), Hint{}))
	}
	for _, m := range ms {
		Recycle(m)
	}
	arenas.Lock()
	held := arenas.bytes
	sum := 0
	for _, a := range arenas.free {
		sum += a.size()
	}
	arenas.Unlock()
	if held > maxFreeBytes || sum != held {
		t.Fatalf("the free stack holds %d bytes (counted %d), bound %d", sum, held, maxFreeBytes)
	}
}

// A large document parsed into a small recycled arena allocates its overflow in a few blocks,
// as many as it would in fresh memory, not in many small ones.
func TestALargeDocumentInASmallArenaAllocatesLikeAFreshOne(t *testing.T) {
	defer SetRecycleMode(SetRecycleMode(RecycleOn))
	drain := func() {
		for getArena() != nil {
		}
	}
	wantNodes.Store(0)
	wantKids.Store(0)
	wantAttrs.Store(0)
	big := fxWide(600)
	parse := func() {
		if _, err := ParseXML(big, DefaultLimits); err != nil {
			t.Fatal(err)
		}
	}
	fresh := testing.AllocsPerRun(20, func() { drain(); parse() })
	drain()
	for i := 0; i < 30; i++ {
		putArena(&arena{nodes: make([]Node, 4), kids: make([]*Node, 4), attrs: make([]Attr, 2)})
	}
	inSmall := testing.AllocsPerRun(20, parse) // each run takes one small arena off the stack
	if inSmall > fresh+4 {
		t.Fatalf("a 600-element document made %.0f allocations in a small recycled arena, %.0f in fresh memory", inSmall, fresh)
	}
}

// TestCarveKeepsEarlierSlices checks the slab behind Seq.Check's results: a carving is never
// handed out twice, across a refill too, and its capacity ends where it does, so an append
// cannot grow into its neighbour.
func TestCarveKeepsEarlierSlices(t *testing.T) {
	var slab []int
	var got [][]int
	for i, n := range []int{3, 40, 30, 1, 64, 70, 2} {
		s := carve(&slab, n)
		if len(s) != n || cap(s) != n {
			t.Fatalf("carving %d: len %d cap %d", n, len(s), cap(s))
		}
		for k := range s {
			s[k] = i
		}
		got = append(got, s)
	}
	for i, s := range got {
		for _, v := range s {
			if v != i {
				t.Fatalf("carving %d was overwritten: %v", i, s)
			}
		}
	}
}

// TestCheckResultsShareASlab checks that the tables of one message do not cost two allocations
// each (a roResponse with one protected RO checks three), and that later checks leave earlier
// results alone.
func TestCheckResultsShareASlab(t *testing.T) {
	var st state
	parent := &Node{Kind: ElementNode, Local: "p", Children: []*Node{{Kind: ElementNode, Local: "a"}, {Kind: ElementNode, Local: "b"}}}
	specs := []ElemSpec{{Name: "a", Min: 1, Max: 1, Type: VAny}, {Name: "b", Min: 1, Max: 1, Type: VAny}}
	m := &Message{IDs: map[string]string{}}
	first := Seq{Where: "t"}.Check(&st, m, parent, specs)
	allocs := testing.AllocsPerRun(50, func() { Seq{Where: "t"}.Check(&st, m, parent, specs) })
	if allocs >= 1 {
		t.Errorf("Seq.Check with a state allocated %.1f times per call", allocs)
	}
	if first.First("a") != parent.Children[0] || first.First("b") != parent.Children[1] {
		t.Errorf("the first result changed after later checks: %v %v", first.First("a"), first.First("b"))
	}
}
