package captures

import (
	"sync"
	"sync/atomic"

	"github.com/roapproxy/roapproxy/decode"
)

// Store keeps the most recent flows in memory, bounded both by count and by body bytes; the
// oldest flow goes first. It assigns flow IDs and publishes an event per change on its Bus.
type Store struct {
	mu       sync.RWMutex
	maxFlows int
	maxBytes int64
	flows    []*Flow // ring ordered oldest first from head
	head     int
	count    int
	bytes    int64
	byID     map[uint64]*Flow
	// nextID is atomic, not under mu: the proxy reserves an ID on the forwarding path, and that
	// must not wait for a store busy adding a flow (on a thread of lower priority, even).
	nextID atomic.Uint64
	bus    *Bus
	sums   map[uint64]*Summary
	rec    *Recorder
}

// StoreOptions bound the store.
type StoreOptions struct {
	MaxFlows int   // default 20,000
	MaxBytes int64 // memory held by flows (bodies and an estimate of the rest), default 24 MiB
}

// NewStore returns a store publishing on bus.
func NewStore(o StoreOptions, bus *Bus) *Store {
	if o.MaxFlows <= 0 {
		o.MaxFlows = 20_000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 24 << 20
	}
	return &Store{maxFlows: o.MaxFlows, maxBytes: o.MaxBytes, flows: make([]*Flow, o.MaxFlows),
		byID: map[uint64]*Flow{}, sums: map[uint64]*Summary{}, bus: bus}
}

// Bus returns the store's event bus.
func (s *Store) Bus() *Bus { return s.bus }

// SetRecorder makes every added flow also go to r.
func (s *Store) SetRecorder(r *Recorder) {
	s.mu.Lock()
	s.rec = r
	s.mu.Unlock()
}

// NextID reserves a flow ID. The proxy takes one when an exchange starts, so the request and
// response halves can be correlated before the flow is complete and stored.
func (s *Store) NextID() uint64 { return s.nextID.Add(1) }

// Add stores f (assigning its ID unless it already has one from NextID), lightens its messages and publishes it.
func (s *Store) Add(f *Flow) uint64 {
	Lighten(f.Request.Message)
	Lighten(f.Response.Message)
	s.mu.Lock()
	if f.ID == 0 {
		f.ID = s.nextID.Add(1)
	}
	// Counted once: eviction takes off exactly what was added, whatever the flow gets later.
	f.counted = footprint(f)
	for s.count > 0 && (s.count >= s.maxFlows || s.bytes+f.counted > s.maxBytes) {
		s.evictLocked()
	}
	idx := (s.head + s.count) % s.maxFlows
	s.flows[idx] = f
	s.count++
	s.bytes += f.counted
	s.byID[f.ID] = f
	sum := Summarize(f)
	s.sums[f.ID] = &sum
	rec := s.rec
	s.mu.Unlock()
	if rec != nil {
		rec.Record(f)
	}
	if s.bus != nil {
		sc := sum
		s.bus.Publish(Event{Type: EventFlow, Flow: &sc, FlowID: f.ID})
	}
	return f.ID
}

func (s *Store) evictLocked() {
	old := s.flows[s.head]
	s.flows[s.head] = nil
	s.head = (s.head + 1) % s.maxFlows
	s.count--
	if old != nil {
		s.bytes -= old.counted
		delete(s.byID, old.ID)
		delete(s.sums, old.ID)
	}
}

// AddFindings attaches late findings (from a tracker window that expired, for example) to the
// flow with the given ID and publishes them. It reports false when the flow is gone.
func (s *Store) AddFindings(id uint64, fs []decode.Finding) bool {
	if len(fs) == 0 {
		return true
	}
	s.mu.Lock()
	f, ok := s.byID[id]
	if ok {
		f.Findings = append(f.Findings, fs...)
		sum := Summarize(f)
		s.sums[id] = &sum
	}
	s.mu.Unlock()
	if ok && s.bus != nil {
		s.bus.Publish(Event{Type: EventFindings, FlowID: id, Findings: fs})
	}
	return ok
}

// Get returns the flow with the given ID.
func (s *Store) Get(id uint64) (*Flow, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, ok := s.byID[id]
	return f, ok
}

// Len returns the number of flows held.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.count
}

// Page is one page of a listing.
type Page struct {
	Flows []Summary `json:"flows"`
	Total int       `json:"total"` // flows matching the filter
	Last  uint64    `json:"lastSeq"`
}

// List returns the summaries matching q, oldest first, skipping offset and returning at most
// limit (limit <= 0: all). Last is the bus sequence number the page is consistent with, so a
// stream subscriber can continue from it.
func (s *Store) List(q Filter, offset, limit int) Page {
	var p Page
	// Read the sequence before taking the store lock (publishers hold the bus lock while
	// filters run, so the opposite order could deadlock). A flow added in between is both in the
	// page and in the stream after Last; clients drop duplicates by flow ID.
	if s.bus != nil {
		p.Last = s.bus.Last()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := 0; i < s.count; i++ {
		f := s.flows[(s.head+i)%s.maxFlows]
		sum := s.sums[f.ID]
		if !q.Match(sum, f) {
			continue
		}
		p.Total++
		if p.Total <= offset || (limit > 0 && len(p.Flows) >= limit) {
			continue
		}
		p.Flows = append(p.Flows, *sum)
	}
	return p
}

// Snapshot returns every flow held, oldest first.
func (s *Store) Snapshot() []*Flow {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Flow, 0, s.count)
	for i := 0; i < s.count; i++ {
		out = append(out, s.flows[(s.head+i)%s.maxFlows])
	}
	return out
}

// Clear drops every flow and publishes a clear event.
func (s *Store) Clear() {
	s.mu.Lock()
	for s.count > 0 {
		s.evictLocked()
	}
	s.mu.Unlock()
	if s.bus != nil {
		s.bus.Publish(Event{Type: EventClear})
	}
}
