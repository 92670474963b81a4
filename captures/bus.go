package captures

import (
	"sync"

	"github.com/roapproxy/roapproxy/decode"
)

// Event types.
const (
	EventFlow     = "flow"     // a flow completed (Flow holds its summary)
	EventFindings = "findings" // late findings were added to an existing flow (a window expired …)
	EventClear    = "clear"    // the store was cleared
	EventResync   = "resync"   // never published: what a lagging subscriber is told to do
)

// Event is one numbered entry of the stream.
type Event struct {
	Seq      uint64           `json:"seq"`
	Type     string           `json:"type"`
	Flow     *Summary         `json:"flow,omitempty"`
	FlowID   uint64           `json:"flowId,omitempty"`
	Findings []decode.Finding `json:"findings,omitempty"`
}

// Bus numbers events and fans them out.
//
// Backpressure contract: Publish never blocks and never waits for a subscriber. Each subscriber
// has a bounded queue; when a publish finds it full, that subscriber is cut off (its channel is
// closed and Lagged reports true) and must resubscribe, from its last sequence number if the
// ring still holds what follows it, or from a fresh snapshot. A slow browser therefore costs the
// proxy one failed non-blocking send, never a stall.
type Bus struct {
	mu   sync.Mutex
	ring []Event // the last len(ring) events, for reconnecting subscribers
	n    uint64  // sequence number of the last published event
	subs map[*Sub]struct{}
}

// NewBus returns a bus that keeps the last ringSize events for catch-up.
func NewBus(ringSize int) *Bus {
	if ringSize < 1 {
		ringSize = 1
	}
	return &Bus{ring: make([]Event, ringSize), subs: map[*Sub]struct{}{}}
}

// Sub is one subscription.
type Sub struct {
	C      <-chan Event
	c      chan Event
	bus    *Bus
	lagged bool
	closed bool
	filter func(*Event) bool
}

// Lagged reports whether the subscription was cut off because its queue was full. Read it after
// C is closed.
func (s *Sub) Lagged() bool {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	return s.lagged
}

// Close ends the subscription.
func (s *Sub) Close() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	s.bus.dropLocked(s)
}

func (b *Bus) dropLocked(s *Sub) {
	if s.closed {
		return
	}
	s.closed = true
	delete(b.subs, s)
	close(s.c)
}

// Publish assigns the next sequence number to e and delivers it without blocking.
func (b *Bus) Publish(e Event) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	e.Seq = b.n
	b.ring[int(e.Seq%uint64(len(b.ring)))] = e
	for s := range b.subs {
		if s.filter != nil && !s.filter(&e) {
			continue
		}
		select {
		case s.c <- e:
		default:
			s.lagged = true
			b.dropLocked(s)
		}
	}
	return e.Seq
}

// Last returns the sequence number of the last published event.
func (b *Bus) Last() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// Subscribe starts a subscription with a queue of the given size. With after > 0 it first
// returns the events numbered after `after` that the ring still holds; complete is false when
// some were already overwritten (the caller must then resync from a snapshot). filter, when
// non-nil, selects the events delivered (on the publisher's goroutine: keep it cheap).
func (b *Bus) Subscribe(after uint64, queue int, filter func(*Event) bool) (s *Sub, backlog []Event, complete bool) {
	if queue < 1 {
		queue = 1
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := make(chan Event, queue)
	s = &Sub{C: c, c: c, bus: b, filter: filter}
	b.subs[s] = struct{}{}
	complete = true
	if after > b.n {
		// The client knows events this bus never published: the process restarted under it.
		return s, nil, false
	}
	if after > 0 && after < b.n {
		oldest := uint64(1)
		if b.n > uint64(len(b.ring)) {
			oldest = b.n - uint64(len(b.ring)) + 1
		}
		if after+1 < oldest {
			complete = false
		} else {
			for seq := after + 1; seq <= b.n; seq++ {
				e := b.ring[int(seq%uint64(len(b.ring)))]
				if filter == nil || filter(&e) {
					backlog = append(backlog, e)
				}
			}
		}
	}
	return s, backlog, complete
}
