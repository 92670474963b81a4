package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roapproxy/roapproxy/captures"
)

// Stream protocol (server → client, JSON text frames):
//
//	{"type":"snapshot","flows":[Summary…],"total":N,"lastSeq":S}  the current table (filtered)
//	{"type":"flow","seq":S,"flow":Summary}                        a new flow
//	{"type":"findings","seq":S,"flowId":ID,"findings":[…]}        late findings for a flow
//	{"type":"clear","seq":S}                                      the store was cleared
//	{"type":"resync","reason":"…"}                                followed by a fresh snapshot
//	{"type":"batch","events":[…]}                                 several of the numbered events
//	                                                              above, in order, in one frame
//
// Events queued while a frame is being written go out together as one batch: at thousands of
// flows per second a frame, a JSON encoding call and a parse in the browser per event would cost
// more than the events themselves. In a burst, frames also go out at most every streamLinger:
// an event that follows a frame sooner waits for the ones behind it. An event after a quiet
// moment goes out at once.
//
// A client connects to /api/stream?since=S (the last seq it saw; 0 for a snapshot) plus the
// filter parameters of /api/flows. If the server still holds every event after S it sends just
// those; otherwise a snapshot. A client that cannot keep up (its queue fills) is sent a resync
// and a new snapshot: the proxy never waits for it.

const snapshotLimit = 5000

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 64 << 10,
	CheckOrigin:     sameOrigin,
}

type snapshotMsg struct {
	Type  string             `json:"type"`
	Flows []captures.Summary `json:"flows"`
	Total int                `json:"total"`
	Last  uint64             `json:"lastSeq"`
}

type batchMsg struct {
	Type   string           `json:"type"`
	Events []captures.Event `json:"events"`
}

// maxBatch bounds one frame (a summary is a few hundred bytes of JSON).
const maxBatch = 256

// streamLinger is the shortest gap between frames during a burst: 20 frames a second is live to
// a person, and each frame costs the browser a task, a parse and a render however few events it
// carries.
const streamLinger = 50 * time.Millisecond

// lingerInto waits until the deadline for more events on c, appending them to batch, up to
// maxBatch. closed reports that c was closed; gone that the client went away.
func lingerInto(batch []captures.Event, c <-chan captures.Event, until time.Time, gone <-chan struct{}) (_ []captures.Event, closed, left bool) {
	wait := time.Until(until)
	if wait <= 0 {
		return batch, false, false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for len(batch) < maxBatch {
		select {
		case e, ok := <-c:
			if !ok {
				return batch, true, false
			}
			batch = append(batch, e)
		case <-t.C:
			return batch, false, false
		case <-gone:
			return batch, false, true
		}
	}
	return batch, false, false
}

// drainInto appends the events already queued on c (without waiting) to batch, up to maxBatch.
// closed reports that c was closed: the subscription was cut off.
func drainInto(batch []captures.Event, c <-chan captures.Event) (_ []captures.Event, closed bool) {
	for len(batch) < maxBatch {
		select {
		case e, ok := <-c:
			if !ok {
				return batch, true
			}
			batch = append(batch, e)
		default:
			return batch, false
		}
	}
	return batch, false
}

type resyncMsg struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	filter := FilterFromQuery(q)
	since, _ := strconv.ParseUint(q.Get("since"), 10, 64)
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer conn.Close()
	// Reader: only to notice the client going away (and answer pings).
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		conn.SetReadLimit(4096)
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	match := func(e *captures.Event) bool {
		if e.Type != captures.EventFlow || e.Flow == nil {
			return true
		}
		// Runs under the bus lock: it must only look at the event, never at the store.
		return filter.Match(e.Flow, nil)
	}
	bus := s.opt.Store.Bus()
	send := func(v any) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return conn.WriteJSON(v) == nil
	}
	for {
		sub, backlog, complete := bus.Subscribe(since, s.opt.StreamQueue, match)
		if since == 0 || !complete {
			page := s.opt.Store.List(filter, 0, 0)
			flows := page.Flows
			if len(flows) > snapshotLimit {
				flows = flows[len(flows)-snapshotLimit:]
			}
			// Events published between List and Subscribe are in the queue already; the client
			// drops any flow it has (by ID), so overlap is harmless and nothing is missed.
			if !send(snapshotMsg{Type: "snapshot", Flows: flows, Total: page.Total, Last: page.Last}) {
				sub.Close()
				return
			}
		} else {
			// What the client missed goes out in full frames, not one frame per event.
			for len(backlog) > 0 {
				n := min(len(backlog), maxBatch)
				var msg any = backlog[0]
				if n > 1 {
					msg = batchMsg{Type: "batch", Events: backlog[:n]}
				}
				if !send(msg) {
					sub.Close()
					return
				}
				backlog = backlog[n:]
			}
		}
		lagged := false
		var lastFrame time.Time
	loop:
		for {
			select {
			case <-gone:
				sub.Close()
				return
			case e, ok := <-sub.C:
				if !ok {
					lagged = sub.Lagged()
					break loop
				}
				batch, closed := drainInto([]captures.Event{e}, sub.C)
				if !closed && len(batch) < maxBatch {
					var left bool
					batch, closed, left = lingerInto(batch, sub.C, lastFrame.Add(streamLinger), gone)
					if left {
						sub.Close()
						return
					}
				}
				var msg any = batch[0]
				if len(batch) > 1 {
					msg = batchMsg{Type: "batch", Events: batch}
				}
				if !send(msg) {
					sub.Close()
					return
				}
				lastFrame = time.Now()
				if closed {
					lagged = sub.Lagged()
					break loop
				}
			}
		}
		if !lagged {
			return
		}
		if !send(resyncMsg{Type: "resync", Reason: "this client fell behind the event stream; sending a fresh snapshot"}) {
			return
		}
		since = 0
	}
}
