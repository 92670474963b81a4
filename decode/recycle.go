package decode

import (
	"os"
	"sync"
	"sync/atomic"
	"unsafe"
)

// A live proxy decodes every body it forwards and, once the exchange is judged and stored
// without its tree, drops the tree again: parse trees were over a third of the bytes a
// verifying proxy allocated, and so the main reason the collector ran. Recycle hands a tree's
// memory back for the next parse instead. Only the proxy's pipeline calls it, at a point where
// it owns the message; every other caller of Decode gets trees that are never reused.

// arena is the memory a document's nodes, child lists and attribute lists are carved from
// first. Parsing takes one from the pool (or sizes a fresh one from the markup); what does not
// fit goes to ordinary blocks. When the document is recycled the arena grows to what it
// needed, so after a few messages of a kind one arena holds a whole document.
type arena struct {
	nodes []Node
	kids  []*Node
	attrs []Attr
	// What the document used from each (a prefix), and what it needed in all.
	usedNodes, usedKids, usedAttrs int
	needNodes, needKids, needAttrs int
}

// Arenas larger than these came from unusual (possibly hostile) documents and are not kept.
// The largest kept is about 420 KiB.
const (
	maxArenaNodes = 2048
	maxArenaKids  = 4096
	maxArenaAttrs = 1024
)

// Recycled arenas wait in a small stack that collections leave alone, then in a sync.Pool.
// The stack covers the usual traffic; the pool takes what a burst (a long analysis queue)
// leaves over and hands it to the collector if it stays unused. The stack is bounded in bytes,
// so however large the arenas some traffic left behind, it keeps at most maxFreeBytes.
var arenas struct {
	sync.Mutex
	free  []*arena
	bytes int
}

var arenaPool sync.Pool

const maxFreeBytes = 2 << 20

func (a *arena) size() int {
	return len(a.nodes)*int(unsafe.Sizeof(Node{})) + len(a.kids)*int(unsafe.Sizeof((*Node)(nil))) + len(a.attrs)*int(unsafe.Sizeof(Attr{}))
}

func getArena() *arena {
	arenas.Lock()
	if n := len(arenas.free); n > 0 {
		a := arenas.free[n-1]
		arenas.free[n-1] = nil
		arenas.free = arenas.free[:n-1]
		arenas.bytes -= a.size()
		arenas.Unlock()
		return a
	}
	arenas.Unlock()
	a, _ := arenaPool.Get().(*arena)
	return a
}

func putArena(a *arena) {
	arenas.Lock()
	if sz := a.size(); arenas.bytes+sz <= maxFreeBytes {
		arenas.free = append(arenas.free, a)
		arenas.bytes += sz
		arenas.Unlock()
		return
	}
	arenas.Unlock()
	arenaPool.Put(a)
}

// A fresh arena (made while none is free) is sized for the documents recycled lately: the
// largest need, decaying by a sixteenth per recycled document, so that an arena made for a
// small request is not regrown by the next large response, and one large document does not
// size every arena after it.
var wantNodes, wantKids, wantAttrs atomic.Int64

func track(v *atomic.Int64, need int) {
	for {
		old := v.Load()
		next := max(int64(need), old-old/16)
		if next == old || v.CompareAndSwap(old, next) {
			return
		}
	}
}

// RecycleMode says what Recycle does with a tree.
type RecycleMode int32

const (
	// RecycleOn reuses a recycled tree's memory for later parses (the default).
	RecycleOn RecycleMode = iota
	// RecycleOff drops recycled trees to the garbage collector, as if Recycle were never called.
	RecycleOff
	// RecyclePoison overwrites every recycled node with a marker and never reuses the memory,
	// so code that still uses a node after its message was recycled reads garbage it cannot
	// mistake for data (Kind is KindRecycled, names say so). Tests run the pipeline this way.
	RecyclePoison
)

// KindRecycled is the Kind of a node whose message was recycled in RecyclePoison mode.
const KindRecycled NodeKind = 0x7f

// PoisonText is what names and text of a poisoned node read.
const PoisonText = "\u2620recycled"

var recycleMode atomic.Int32

func init() {
	// ROAPPROXY_RECYCLE=off|poison lets an operator rule recycling out when chasing a bug.
	switch os.Getenv("ROAPPROXY_RECYCLE") {
	case "off":
		recycleMode.Store(int32(RecycleOff))
	case "poison":
		recycleMode.Store(int32(RecyclePoison))
	}
}

// SetRecycleMode sets what Recycle does from now on and returns the previous mode.
func SetRecycleMode(m RecycleMode) RecycleMode {
	return RecycleMode(recycleMode.Swap(int32(m)))
}

// newArena returns an arena for a document of b's markup: a recycled one when there is one.
func newArena(b []byte) *arena {
	if a := getArena(); a != nil {
		return a
	}
	n, k, at := blockSizes(b)
	n, k, at = max(n, int(wantNodes.Load())), max(k, int(wantKids.Load())), max(at, int(wantAttrs.Load()))
	return &arena{nodes: make([]Node, n), kids: make([]*Node, k), attrs: make([]Attr, at)}
}

// Hold records that something keeps m (or a node of its tree, or of a nested message's) past
// the call it was handed to, such as a tracker that checks a later response against this
// request. Recycle leaves a message alone while it, or any message nested in it, is held.
func (m *Message) Hold() {
	if m != nil {
		m.holds.Add(1)
	}
}

// Release undoes one Hold.
func (m *Message) Release() {
	if m != nil {
		m.holds.Add(-1)
	}
}

func (m *Message) held() bool {
	if m.holds.Load() > 0 {
		return true
	}
	for _, n := range m.Nested {
		if n != nil && n.held() {
			return true
		}
	}
	return false
}

// Recycle gives the parse trees of m and of the messages nested in it back for reuse, and sets
// their Doc and Root to nil. The caller asserts that nothing but holders (see Hold) refers to
// any node of those trees any more; strings taken from the trees stay valid, since they point
// into the bodies, not into the nodes. It returns false, and changes nothing, when a message is
// held.
func Recycle(m *Message) bool {
	if m == nil || m.held() {
		return false
	}
	mode := RecycleMode(recycleMode.Load())
	m.recycle(mode)
	return true
}

func (m *Message) recycle(mode RecycleMode) {
	if m.Doc != nil {
		m.Doc.recycle(mode)
	}
	m.Doc, m.Root = nil, nil
	for _, n := range m.Nested {
		if n != nil {
			n.recycle(mode)
		}
	}
}

func (d *Document) recycle(mode RecycleMode) {
	a := d.arena
	if a == nil {
		return
	}
	d.arena, d.Root = nil, nil
	a.release(mode)
}

// release clears what the document used and pools the arena, grown to fit that document.
func (a *arena) release(mode RecycleMode) {
	switch mode {
	case RecycleOff:
		return
	case RecyclePoison:
		for i := range a.nodes[:a.usedNodes] {
			a.nodes[i] = Node{Kind: KindRecycled, Prefix: PoisonText, Local: PoisonText, Space: PoisonText, Text: PoisonText, Start: -1, End: -1, Inner: -1, InnerEnd: -1}
		}
		for i := range a.kids[:a.usedKids] {
			a.kids[i] = nil
		}
		for i := range a.attrs[:a.usedAttrs] {
			a.attrs[i] = Attr{Prefix: PoisonText, Local: PoisonText, Space: PoisonText, Value: PoisonText}
		}
		return
	}
	// Cleared, so a pooled arena keeps no body or node alive.
	clear(a.nodes[:a.usedNodes])
	clear(a.kids[:a.usedKids])
	clear(a.attrs[:a.usedAttrs])
	if a.needNodes > maxArenaNodes || a.needKids > maxArenaKids || a.needAttrs > maxArenaAttrs {
		return
	}
	track(&wantNodes, a.needNodes)
	track(&wantKids, a.needKids)
	track(&wantAttrs, a.needAttrs)
	if len(a.nodes) > 4*max(a.needNodes, int(wantNodes.Load()), 64) {
		return // made for a document far larger than the recent ones: let the collector have it
	}
	if a.needNodes > len(a.nodes) {
		a.nodes = make([]Node, a.needNodes)
	}
	if a.needKids > len(a.kids) {
		a.kids = make([]*Node, a.needKids)
	}
	if a.needAttrs > len(a.attrs) {
		a.attrs = make([]Attr, a.needAttrs)
	}
	a.usedNodes, a.usedKids, a.usedAttrs = 0, 0, 0
	a.needNodes, a.needKids, a.needAttrs = 0, 0, 0
	putArena(a)
}
