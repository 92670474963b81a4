package verify

import (
	"container/list"
	"sync"
)

// bounded is a map with a capacity: adding beyond it evicts the entry written (or, when touch is
// set, used) longest ago. Every piece of state the verifier keeps about traffic lives in one, so
// a hostile or endless capture cannot grow memory. Not safe for concurrent use; callers lock.
type bounded[K comparable, V any] struct {
	cap   int
	touch bool // get moves an entry to the front (LRU); otherwise only put does (oldest-first)
	ll    *list.List
	m     map[K]*list.Element
}

type boundedEntry[K comparable, V any] struct {
	k K
	v V
}

func newBounded[K comparable, V any](capacity int, touch bool) *bounded[K, V] {
	if capacity < 1 {
		capacity = 1
	}
	return &bounded[K, V]{cap: capacity, touch: touch, ll: list.New(), m: make(map[K]*list.Element)}
}

func (b *bounded[K, V]) get(k K) (V, bool) {
	e, ok := b.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	if b.touch {
		b.ll.MoveToFront(e)
	}
	return e.Value.(*boundedEntry[K, V]).v, true
}

func (b *bounded[K, V]) put(k K, v V) {
	if e, ok := b.m[k]; ok {
		e.Value.(*boundedEntry[K, V]).v = v
		b.ll.MoveToFront(e)
		return
	}
	b.m[k] = b.ll.PushFront(&boundedEntry[K, V]{k: k, v: v})
	for b.ll.Len() > b.cap {
		old := b.ll.Back()
		b.ll.Remove(old)
		delete(b.m, old.Value.(*boundedEntry[K, V]).k)
	}
}

func (b *bounded[K, V]) del(k K) {
	if e, ok := b.m[k]; ok {
		b.ll.Remove(e)
		delete(b.m, k)
	}
}

func (b *bounded[K, V]) len() int { return b.ll.Len() }

// each visits entries oldest first; fn returns false to stop. fn must not modify b.
func (b *bounded[K, V]) each(fn func(k K, v V) bool) {
	for e := b.ll.Back(); e != nil; e = e.Prev() {
		be := e.Value.(*boundedEntry[K, V])
		if !fn(be.k, be.v) {
			return
		}
	}
}

// remember returns b's value for k, computing it with f and keeping it when b has none. mu
// guards b; f runs without it, so two callers may both compute a missing value, which is fine for
// the pure functions memoized this way.
func remember[K comparable, V any](mu *sync.Mutex, b *bounded[K, V], k K, f func() V) V {
	mu.Lock()
	v, ok := b.get(k)
	mu.Unlock()
	if ok {
		return v
	}
	v = f()
	mu.Lock()
	b.put(k, v)
	mu.Unlock()
	return v
}
