package intercept

import (
	"runtime"
	"sync"
)

// The analyser behind the forwarding path. Forwarding queues each step of an exchange (request,
// response, done) as it passes; decoders decode the bodies in parallel and one judge applies the
// steps strictly in the order they were queued.
//
// Queuing a step does not wake the analyser; the exchange's last step wakes the judge (and a long
// queue, a full budget or the pipeline's ticker wake the decoders too). The judge decodes
// inline whatever no decoder has taken, so at low concurrency one goroutine does all the
// analysis, woken once per exchange after the client has its response: a wake-up per step and
// per goroutine was a thread wake-up on the forwarding path, five per exchange, and at
// concurrency 1 the scheduler's wake-ups and spinning cost more CPU than forwarding itself.
// Under load the decoders take the bodies in parallel. Nothing is visible earlier anyway: a
// flow is stored at its last step.
//
// The judge can run at a lower CPU priority (Config.AnalysisNice): when the proxy shares a
// machine with its peers, as in a test lab or on a developer's laptop, the exchange in flight
// and the processes it waits for then get the CPU before the analysis of exchanges already
// answered. On the 2-core test machine this took concurrency-1 throughput from 0.40× to 0.52×
// direct (means of 15 interleaved pairs of roapload runs: 13 in its favour, one even, one
// against), with no change at concurrency 32. If other work keeps the machine busy, the niced
// thread gets a few percent of a CPU; then a goroutine at the process's priority takes the
// judging over until the queue is empty (behind, takeOver). Before it did, forwarding waited for
// the starved thread at the queue's bounds: with one core taken by a busy loop, the verifying
// proxy managed 0.27× the throughput it has now at concurrency 32, at 4.4× the CPU per request
// (means of four interleaved pairs of roapload runs).

// analysisQueue bounds the steps queued (three per exchange): well under a second of traffic at
// the rates two cores can verify.
const analysisQueue = 4096

// kickAt is the queue length from which every step wakes the analyser: under load the analyser
// runs continuously instead of waiting for exchanges to end.
const kickAt = 64

// jobQueue is a FIFO whose consumers sleep until kicked.
type jobQueue struct {
	mu     sync.Mutex
	jobs   []*job
	head   int
	closed bool
	wake   chan struct{} // capacity 1: a wake-up not yet taken
}

func newJobQueue() jobQueue { return jobQueue{wake: make(chan struct{}, 1)} }

func (q *jobQueue) push(j *job) int {
	q.mu.Lock()
	q.jobs = append(q.jobs, j)
	n := len(q.jobs) - q.head
	q.mu.Unlock()
	return n
}

// kick wakes a sleeping consumer, if there is one.
func (q *jobQueue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop returns the next job, sleeping until there is one and a kick; ok is false once the queue
// is closed and empty. left is how many jobs remain behind it.
func (q *jobQueue) pop() (j *job, left int, ok bool) {
	for {
		j, left, closed := q.tryPop()
		if j != nil {
			return j, left, true
		}
		if closed {
			q.kick() // the next consumer asleep must see it too
			return nil, 0, false
		}
		<-q.wake
	}
}

// tryPop returns the next job, or nil at once when there is none; closed then says whether
// none will ever come.
func (q *jobQueue) tryPop() (j *job, left int, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head >= len(q.jobs) {
		return nil, 0, q.closed
	}
	j = q.jobs[q.head]
	q.jobs[q.head] = nil
	q.head++
	left = len(q.jobs) - q.head
	switch {
	case left == 0:
		// Reuse the backing array instead of letting it creep forward.
		q.jobs, q.head = q.jobs[:0], 0
	case q.head >= 1024 && q.head >= left:
		// A queue that never drains would otherwise keep every slot it ever used.
		n := copy(q.jobs, q.jobs[q.head:])
		clear(q.jobs[n:])
		q.jobs, q.head = q.jobs[:n], 0
	}
	return j, left, false
}

func (q *jobQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.kick()
}

// kick wakes the decoders and the judge.
func (p *Pipeline) kick() {
	p.toDecode.kick()
	p.ordered.kick()
}

// submit queues j for analysis; wake says whether the analyser should start on it now. The
// queues are bounded in steps and in body bytes: when analysis falls that far behind,
// forwarding waits for it rather than dropping anything. After Close, jobs run inline.
func (p *Pipeline) submit(j *job, wake bool) {
	// Taken before submitMu so a full queue holds up only this exchange's forwarding. The
	// analyser is woken first: what fills the queue must be drained.
	select {
	case p.slots <- struct{}{}:
	default:
		p.behind()
		p.slots <- struct{}{}
	}
	j.held = p.budget.acquire(j.held, p.behind)
	p.submitMu.Lock()
	if p.closed {
		p.submitMu.Unlock()
		<-p.slots
		p.budget.release(j.held)
		// After everything queued before Close: this flow's earlier steps may still be there.
		<-p.stopped
		p.decode(j)
		p.apply(j)
		return
	}
	p.pending.Add(1)
	if j.body != nil {
		j.ready = make(chan struct{})
		p.toDecode.push(j)
	}
	// The judge's queue is the order of record: the order in which submits reached it.
	n := p.ordered.push(j)
	p.submitMu.Unlock()
	switch {
	case n >= takeOverAt:
		p.behind()
	case n >= kickAt:
		p.kick()
	case wake:
		p.ordered.kick()
	}
}

// takeOverAt is the queue length at which a judge on a lower CPU priority counts as starved:
// 21 exchanges, about 4 ms of traffic at the rate two cores verify. At concurrency 1 the queue
// never gets near it. Under saturation it bounds the decoded trees waiting for the judge, whose
// arenas the collector marks on every cycle (12 MB of the live heap at 256 steps): at 1,024
// steps a verifying proxy took 1.05x the CPU per request of 256 (eight interleaved pairs of
// roapload runs), and 256 took 1.07x that of 64 (four pairs of three-round runs, all four in
// favour of 64, as ratios to the TCP relay of each run).
const takeOverAt = analysisQueue / 64

// behind wakes the analyser and, when the judge runs at a lower priority, has a goroutine at
// the process's own priority take the judging over until the queue is empty. A niced
// thread gets a few percent of a CPU that other work keeps busy; without this, forwarding
// would then wait for it at the queue's bounds and crawl at whatever rate it got.
func (p *Pipeline) behind() {
	p.kick()
	if p.cfg.AnalysisNice > 0 && p.takingOver.CompareAndSwap(false, true) {
		go p.takeOver()
	}
}

// takeOver judges at normal priority until the queue is empty. It waits for the judge to finish
// the job it is on (the order of record must hold), so a judge the scheduler preempted mid-job
// still delays it once, by one scheduling period; after that it holds the judging until the
// queue is empty.
func (p *Pipeline) takeOver() {
	defer p.takingOver.Store(false)
	p.judging.Lock()
	defer p.judging.Unlock()
	for {
		j, left, _ := p.ordered.tryPop()
		if j == nil {
			return
		}
		p.judgeOne(j)
		if left == 0 {
			return
		}
	}
}

// Close analyses and stores what is still queued, then stops the pipeline's background work.
// Exchanges still running afterwards are analysed inline.
func (p *Pipeline) Close() {
	p.once.Do(func() {
		close(p.stop)
		p.submitMu.Lock()
		p.closed = true
		p.submitMu.Unlock()
		p.toDecode.close()
		p.ordered.close()
		<-p.stopped
	})
}

// defaultAnalysisBudget bounds the body bytes waiting for analysis. The queues count jobs; bodies
// can be megabytes each, and a burst of them must slow forwarding down rather than outgrow the
// memory the proxy is meant to stay within.
const defaultAnalysisBudget = 32 << 20

// byteBudget is a counting semaphore over bytes.
type byteBudget struct {
	mu   sync.Mutex
	cond sync.Cond
	used int64
	max  int64
}

func newByteBudget(max int64) *byteBudget {
	b := &byteBudget{max: max}
	b.cond.L = &b.mu
	return b
}

// acquire waits until n bytes (at most the whole budget) fit, takes them, and returns how many
// it took. Before it waits it calls drain, which must lead to bytes being released.
func (b *byteBudget) acquire(n int64, drain func()) int64 {
	n = min(n, b.max)
	if n <= 0 {
		return 0
	}
	b.mu.Lock()
	for b.used+n > b.max {
		b.mu.Unlock()
		drain()
		b.mu.Lock()
		if b.used+n > b.max {
			b.cond.Wait()
		}
	}
	b.used += n
	b.mu.Unlock()
	return n
}

func (b *byteBudget) release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	b.cond.Broadcast()
}

// decoder decodes jobs in parallel: decoding is stateless, and most of the analysis.
func (p *Pipeline) decoder() {
	defer p.decoders.Done()
	for {
		j, left, ok := p.toDecode.pop()
		if !ok {
			return
		}
		if left >= 2 {
			// More than this decoder will get to soon: wake another.
			p.toDecode.kick()
		}
		if !j.claimed.CompareAndSwap(false, true) {
			continue // the judge got to it first
		}
		p.decode(j)
		close(j.ready)
	}
}

func (p *Pipeline) decode(j *job) {
	if j.body == nil {
		return
	}
	h := j.hint
	if j.req != nil {
		// The request's job was queued for decoding before this one, so some decoder has it.
		if j.req.ready != nil {
			<-j.req.ready
		}
		if j.req.msg != nil {
			h.Answers = j.req.msg.Kind
		}
	}
	j.msg = p.cfg.Decoder.Decode(j.body, h)
}

// judge applies the jobs one at a time in the order they were queued: the order in which
// requests and responses passed the proxy, which is the order the tracker's cross-message and
// cross-leg rules reason about.
func (p *Pipeline) judge() {
	defer close(p.stopped)
	if p.cfg.AnalysisNice > 0 {
		// The judge keeps its own thread, at a lower CPU priority, for as long as it runs.
		// It never unlocks it: the runtime then ends the thread with the goroutine (or parks
		// it for good, if it was the main thread), so no other goroutine ever runs at that
		// priority.
		runtime.LockOSThread()
		lowerThreadPriority(p.cfg.AnalysisNice)
	}
	for {
		if p.cfg.judgeGate != nil {
			<-p.cfg.judgeGate
		}
		p.judging.Lock()
		j, _, closed := p.ordered.tryPop()
		if j != nil {
			p.judgeOne(j)
		}
		p.judging.Unlock()
		switch {
		case j != nil:
		case closed:
			// Decoders may still be finishing jobs the judge no longer waits for.
			p.decoders.Wait()
			return
		default:
			<-p.ordered.wake
		}
	}
}

// judgeOne decodes j if no decoder has taken it, applies it and frees its place in the queues.
// The caller holds p.judging.
func (p *Pipeline) judgeOne(j *job) {
	if j.ready != nil {
		if j.claimed.CompareAndSwap(false, true) {
			p.decode(j)
			close(j.ready)
		} else {
			<-j.ready
		}
	}
	p.apply(j)
	<-p.slots
	p.budget.release(j.held)
	if at := j.passed(); !at.IsZero() {
		p.judgedAt.Store(at.UnixNano())
	}
	p.pending.Add(-1)
	p.judged.Add(1)
}
