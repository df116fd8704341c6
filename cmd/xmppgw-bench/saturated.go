package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ---------- 4c. fan-out with a backlog ----------

// SaturatedLoad is one fan-out-saturated size: S subscribers of one stream
// offered Rate events/s, more deliveries (S × Rate) than the box can make,
// so that queues build up everywhere along the way.
type SaturatedLoad struct {
	S    int     `json:"s"`
	Rate float64 `json:"rate"`
}

// parseSaturated reads "S@rate,S@rate".
func parseSaturated(s string) ([]SaturatedLoad, error) {
	var out []SaturatedLoad
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		subs, rate, ok := strings.Cut(part, "@")
		n, err1 := strconv.Atoi(subs)
		r, err2 := strconv.ParseFloat(rate, 64)
		if !ok || err1 != nil || err2 != nil || n < 1 || r <= 0 {
			return nil, fmt.Errorf("%q: want S@events-per-second, e.g. 1000@500", part)
		}
		out = append(out, SaturatedLoad{S: n, Rate: r})
	}
	return out, nil
}

// SaturatedRun: Msgs events sent to one stream at the offered rate while S
// subscribers read it, until every subscriber has every event.
type SaturatedRun struct {
	SaturatedLoad
	Reader string `json:"reader"`
	Msgs   int    `json:"msgs"`
	// Delivered is how many events the subscribers parsed (S × Msgs when
	// nothing was lost); every subscriber got every event once, in the same
	// order, or the run fails.
	Delivered int64 `json:"delivered"`
	// Seconds runs from the first send to the last delivery.
	Seconds float64 `json:"seconds"`
	// DeliveriesPerSec is Delivered / Seconds: with the backlog, what the
	// gateway and the subscribers sustain together.
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	// GatewayCPUus and ClientsCPUus are CPU per delivery (µs) of the
	// gateway and of this process (the subscribers, and the few senders).
	GatewayCPUus float64 `json:"gateway_cpu_us_per_delivery"`
	ClientsCPUus float64 `json:"clients_cpu_us_per_delivery"`
	Load         string  `json:"loadavg"`
}

// saturatedSenders is how many REST senders (streams of f1) share the
// offered rate: one would wait on each request's round trip.
const saturatedSenders = 4

// fanoutSaturated runs one SaturatedRun of load for d.
func (e *env) fanoutSaturated(ctx context.Context, load SaturatedLoad, d time.Duration, reader string) (SaturatedRun, error) {
	msgs := max(1, int(load.Rate*d.Seconds()))
	r := SaturatedRun{SaturatedLoad: load, Reader: reader, Msgs: msgs, Load: loadavg()}
	target, err := e.gwc.login(ctx, "f0", benchPassword)
	if err != nil {
		return r, err
	}
	defer e.gwc.logoff(context.Background(), target)
	senders := make([]gwStream, saturatedSenders)
	for i := range senders {
		if senders[i], err = e.gwc.login(ctx, "f1", benchPassword); err != nil {
			return r, err
		}
		defer e.gwc.logoff(context.Background(), senders[i])
	}
	a := newArrivals(msgs)
	orders := make([]subscriberOrder, load.S)
	subscribe, stopErr, err := readerSubscribers(ctx, e.gwc, reader)
	if err != nil {
		return r, err
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		return stopErr()
	}
	defer func() { _ = stop() }()
	if err := parallel(load.S, e.cfg.loginConc, func(i int) error {
		return subscribe(target, func(body string, at time.Time) {
			if seq, _, ok := parseBenchBody(body); ok {
				orders[i].add(seq)
			}
			a.onChat(body, at)
		})
	}); err != nil {
		return r, err
	}
	time.Sleep(200 * time.Millisecond)
	to := "f0@" + e.domain
	cpu0, me0 := cpuOf(e.gw.Pid()), cpuOf(os.Getpid())
	t0 := time.Now()
	if err := sendPaced(ctx, senders, msgs, load.Rate, func(s gwStream, seq int64) error {
		return e.gwc.send(s, to, benchBody(seq, time.Now()))
	}); err != nil {
		return r, err
	}
	want := int64(load.S) * int64(msgs)
	// Until everything arrived, or nothing more did for 10 s.
	for last, lastAt := int64(-1), time.Now(); ; time.Sleep(5 * time.Millisecond) {
		n := a.delivered()
		if n == want {
			break
		}
		if n != last {
			last, lastAt = n, time.Now()
		} else if time.Since(lastAt) > 10*time.Second {
			return r, fmt.Errorf("%d of %d deliveries after 10 s without progress", n, want)
		}
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
	}
	gwCPU, myCPU := cpuOf(e.gw.Pid())-cpu0, cpuOf(os.Getpid())-me0
	var end int64
	for i := range a.last {
		end = max(end, a.last[i].Load())
	}
	r.Delivered = want
	r.Seconds = time.Duration(end - t0.UnixNano()).Seconds()
	if r.Seconds > 0 {
		r.DeliveriesPerSec = float64(want) / r.Seconds
	}
	r.GatewayCPUus = float64(gwCPU.Microseconds()) / float64(want)
	r.ClientsCPUus = float64(myCPU.Microseconds()) / float64(want)
	if err := stop(); err != nil { // an evicted subscriber shows up here
		return r, err
	}
	for m := range a.counts {
		if n := a.counts[m].Load(); n != int64(load.S) {
			return r, fmt.Errorf("event %d reached %d of %d subscribers", m, n, load.S)
		}
	}
	return r, checkSameOrder(orders, msgs)
}

// sendPaced sends msgs events at rate over senders (each its own
// goroutine, its share of the rate), numbering them 0..msgs-1 in the
// order they are sent.
func sendPaced(ctx context.Context, senders []gwStream, msgs int, rate float64, send func(gwStream, int64) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, len(senders))
	interval := time.Duration(float64(time.Second) * float64(len(senders)) / rate)
	start := time.Now()
	for i, s := range senders {
		wg.Go(func() {
			for k := 0; ; k++ {
				// Open loop: the k-th send of this sender is due at a fixed time.
				due := start.Add(time.Duration(k)*interval + time.Duration(i)*interval/time.Duration(len(senders)))
				if wait := time.Until(due); wait > 0 {
					select {
					case <-ctx.Done():
						errs[i] = ctx.Err()
						return
					case <-time.After(wait):
					}
				}
				seq := next.Add(1) - 1
				if seq >= int64(msgs) {
					return
				}
				if err := send(s, seq); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// subscriberOrder is what one subscriber saw: how many bench events and a
// hash of their order. It is written by the one reader of that subscriber.
type subscriberOrder struct {
	n    int
	hash uint64
}

func (o *subscriberOrder) add(seq int64) {
	o.n++
	o.hash = o.hash*1099511628211 + uint64(seq) + 1
}

// checkSameOrder insists that every subscriber saw msgs events in one and
// the same order (arrivals already counted each event S times, so together
// with this nothing was lost or doubled).
func checkSameOrder(orders []subscriberOrder, msgs int) error {
	for i, o := range orders {
		if o.n != msgs {
			return fmt.Errorf("subscriber %d got %d events, want %d", i, o.n, msgs)
		}
		if o.hash != orders[0].hash {
			return fmt.Errorf("subscriber %d got the events in another order than subscriber 0", i)
		}
	}
	return nil
}
