package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roapproxy/roapproxy/sim"
)

// client posts exchanges to one target (the upstream itself, or a reverse listener of the proxy).
type client struct {
	url string
	hc  *http.Client
	pl  *payload
}

func newClient(target string, pl *payload, conns int) *client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &client{url: target + "/roap", hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}, pl: pl}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// connect returns a client of target that has sent the prelude.
func connect(ctx context.Context, target string, pl *payload, conns int) (*client, error) {
	c := newClient(target, pl, conns)
	if err := c.prime(ctx); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// prime sends the payload's prelude, if it has one, before any measured load: a verifying
// proxy learns the RI chain from it, as it would from a registration.
func (c *client) prime(ctx context.Context) error {
	if c.pl.prelude == nil {
		return nil
	}
	var buf bytes.Buffer
	if err := c.do(ctx, *c.pl.prelude, &buf); err != nil {
		return fmt.Errorf("prelude exchange: %w", err)
	}
	return nil
}

// do sends one exchange and checks that the answer is the upstream's response, byte for byte.
func (c *client) do(ctx context.Context, x exchange, buf *bytes.Buffer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(x.req))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", sim.CTROAP)
	req.Header.Set("User-Agent", "roapload")
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := io.Copy(buf, resp.Body); err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, clip(buf.String(), 120))
	}
	if !bytes.Equal(buf.Bytes(), x.resp) {
		return fmt.Errorf("response body differs from the upstream's (%d bytes, want %d)", buf.Len(), len(x.resp))
	}
	return nil
}

// runResult is what one load run observed from the client side.
type runResult struct {
	Requests  int
	Errors    int
	FirstErr  string
	Elapsed   time.Duration
	Latencies []time.Duration
	Shed      int // rate mode: requests the dispatcher could not hand to a free worker in time
}

func (r *runResult) note(err error) {
	r.Errors++
	if r.FirstErr == "" {
		r.FirstErr = err.Error()
	}
}

func (r *runResult) merge(o *runResult) {
	r.Requests += o.Requests
	r.Latencies = append(r.Latencies, o.Latencies...)
	if o.Errors > 0 {
		r.Errors += o.Errors
		if r.FirstErr == "" {
			r.FirstErr = o.FirstErr
		}
	}
}

// closedLoop runs conc workers that each send the next request as soon as the previous one
// is answered, until count requests are done (count > 0) or d has passed.
func closedLoop(ctx context.Context, c *client, conc, count int, d time.Duration) *runResult {
	var (
		next  atomic.Int64
		mu    sync.Mutex
		total = &runResult{}
		wg    sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := &runResult{}
			var buf bytes.Buffer
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if count > 0 && i >= int64(count) {
					break
				}
				if count <= 0 && !time.Now().Before(deadline) {
					break
				}
				x := c.pl.exchanges[int(i)%len(c.pl.exchanges)]
				t0 := time.Now()
				err := c.do(ctx, x, &buf)
				local.Latencies = append(local.Latencies, time.Since(t0))
				local.Requests++
				if err != nil {
					local.note(err)
				}
			}
			mu.Lock()
			total.merge(local)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.Elapsed = time.Since(start)
	return total
}

// fixedRate sends rate requests per second for d, open loop: a dispatcher schedules request i
// at start + i/rate whether or not earlier ones are answered, and latency runs from that
// scheduled time, so a proxy that falls behind shows up as latency rather than as a slower
// schedule (no coordinated omission). Requests that find no idle worker within a second of
// their slot are shed and counted.
func fixedRate(ctx context.Context, c *client, rate float64, d time.Duration, workers int) *runResult {
	slots := make(chan time.Time, workers)
	var (
		mu    sync.Mutex
		total = &runResult{}
		wg    sync.WaitGroup
		next  atomic.Int64
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := &runResult{}
			var buf bytes.Buffer
			for at := range slots {
				i := next.Add(1) - 1
				x := c.pl.exchanges[int(i)%len(c.pl.exchanges)]
				err := c.do(ctx, x, &buf)
				local.Latencies = append(local.Latencies, time.Since(at))
				local.Requests++
				if err != nil {
					local.note(err)
				}
			}
			mu.Lock()
			total.merge(local)
			mu.Unlock()
		}()
	}
	start := time.Now()
	want := int(rate * d.Seconds())
	shed := 0
	for sent := 0; sent < want && ctx.Err() == nil; {
		due := int(time.Since(start).Seconds() * rate)
		if due > want {
			due = want
		}
		for ; sent < due; sent++ {
			at := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
			if time.Since(at) > time.Second {
				shed++
				continue
			}
			select {
			case slots <- at:
			case <-time.After(time.Until(at.Add(time.Second))):
				shed++
			}
		}
		time.Sleep(time.Millisecond)
	}
	close(slots)
	wg.Wait()
	total.Elapsed = time.Since(start)
	total.Shed = shed
	return total
}
