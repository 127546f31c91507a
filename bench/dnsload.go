package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// dnsQuery is one query of a load run: the name asked (type A) and the
// address its answer must hold.
type dnsQuery struct {
	name string
	want netip.Addr
}

// dnsLoadConfig is one run of the load generator: conc queries
// outstanding at all times, spread over sockets UDP sockets, each answered
// or given up after timeout. The run sends until its duration is over or
// next has no more queries, whichever comes first, then waits for the
// queries still out.
type dnsLoadConfig struct {
	server   netip.AddrPort
	conc     int
	sockets  int
	duration time.Duration // 0: until next has no more
	timeout  time.Duration
	// next returns the i-th query of the run (i counts from 0), false
	// when there is no more. It is called from several goroutines.
	next func(i int) (dnsQuery, bool)
	// dial opens a socket to the server (default: net.DialUDP in the
	// caller's namespace); the benchmark opens them in the client's.
	dial func() (*net.UDPConn, error)
}

// dnsLoadResult is what a run measured.
type dnsLoadResult struct {
	sent, answered int
	// failed are answers that were not the expected one (a wrong
	// address, an error code, no answer record); timedOut are queries
	// with no answer within the timeout.
	failed, timedOut int
	// firstFailure describes the first wrong answer or, without one,
	// the first query that timed out.
	firstFailure string
	// elapsed runs from the first query sent to the last answer or give-up.
	elapsed time.Duration
	// latencies are the answered queries' round trips.
	latencies []time.Duration
}

// qps is the answered queries per second.
func (r *dnsLoadResult) qps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.answered) / r.elapsed.Seconds()
}

// failures is the share of sent queries that failed or timed out.
func (r *dnsLoadResult) failures() float64 {
	if r.sent == 0 {
		return 0
	}
	return float64(r.failed+r.timedOut) / float64(r.sent)
}

// dnsFailureLimit is the largest share of failed or timed-out queries a
// run may have and still be a figure.
const dnsFailureLimit = 0.001

// check fails a run whose failures make it no figure.
func (r *dnsLoadResult) check() error {
	if r.answered == 0 {
		return fmt.Errorf("no query of %d answered (%d failed, %d timed out) %s", r.sent, r.failed, r.timedOut, r.firstFailure)
	}
	if f := r.failures(); f > dnsFailureLimit {
		return &failuresError{fmt.Errorf("%d of %d queries failed and %d timed out (%.2f%%, over %.1f%%): %s",
			r.failed, r.sent, r.timedOut, 100*f, 100*dnsFailureLimit, r.firstFailure)}
	}
	return nil
}

// failuresError is a run with too many failed or timed-out queries to be
// a figure.
type failuresError struct{ error }

func (e *failuresError) Unwrap() error { return e.error }

// runDNSLoad runs the load generator.
func runDNSLoad(ctx context.Context, c dnsLoadConfig) (*dnsLoadResult, error) {
	if c.conc < 1 || c.sockets < 1 || c.timeout <= 0 {
		return nil, errors.New("dns load: concurrency, sockets and timeout must be positive")
	}
	c.sockets = min(c.sockets, c.conc)
	if c.dial == nil {
		c.dial = func() (*net.UDPConn, error) {
			return net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(c.server))
		}
	}
	conns := make([]*net.UDPConn, 0, c.sockets)
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	for range c.sockets {
		conn, err := c.dial()
		if err != nil {
			return nil, fmt.Errorf("dns load: socket: %w", err)
		}
		conns = append(conns, conn)
	}
	var (
		counter atomic.Int64
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	workers := make([]*dnsWorker, c.sockets)
	start := time.Now()
	if c.duration > 0 {
		t := time.AfterFunc(c.duration, func() { stop.Store(true) })
		defer t.Stop()
	}
	for k, conn := range conns {
		window := c.conc / c.sockets
		if k < c.conc%c.sockets {
			window++
		}
		w := &dnsWorker{conn: conn, window: window, timeout: c.timeout, next: c.next, counter: &counter, stop: &stop,
			inflight: map[uint16]inflight{}, id: uint16(k * 7919)}
		workers[k] = w
		wg.Go(func() { w.run(ctx) })
	}
	wg.Wait()
	r := &dnsLoadResult{elapsed: time.Since(start)}
	var wrong, timeout string
	for _, w := range workers {
		if w.err != nil {
			return nil, w.err
		}
		r.sent += w.sent
		r.answered += w.answered
		r.failed += w.failed
		r.timedOut += w.timedOut
		wrong, timeout = cmp.Or(wrong, w.firstWrong), cmp.Or(timeout, w.firstTimeout)
		r.latencies = append(r.latencies, w.latencies...)
	}
	r.firstFailure = cmp.Or(wrong, timeout)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

// inflight is a query sent and not yet answered.
type inflight struct {
	q    dnsQuery
	sent time.Time
}

// dnsWorker keeps window queries outstanding on one socket: it sends a
// new one for each answer or give-up.
type dnsWorker struct {
	conn     *net.UDPConn
	window   int
	timeout  time.Duration
	next     func(int) (dnsQuery, bool)
	counter  *atomic.Int64
	stop     *atomic.Bool
	inflight map[uint16]inflight
	id       uint16
	done     bool // next has no more, or the run's time is over

	sent, answered, failed, timedOut int
	firstWrong, firstTimeout         string
	latencies                        []time.Duration
	err                              error
}

func (w *dnsWorker) run(ctx context.Context) {
	buf := make([]byte, 65535)
	w.fill()
	for len(w.inflight) > 0 && w.err == nil {
		if ctx.Err() != nil {
			return
		}
		// Wake up at least every quarter timeout to give up on lost
		// queries.
		w.conn.SetReadDeadline(time.Now().Add(w.timeout / 4))
		n, err := w.conn.Read(buf)
		now := time.Now()
		if err != nil {
			// An ICMP error (nothing listens) reads as a refused
			// connection: the query is lost, as its timeout tells.
			if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, syscall.ECONNREFUSED) {
				w.err = fmt.Errorf("dns load: read: %w", err)
				return
			}
			w.expire(now)
			w.fill()
			continue
		}
		w.answer(buf[:n], now)
		w.expire(now)
		w.fill()
	}
}

// fill sends queries until the window is full or there are no more.
func (w *dnsWorker) fill() {
	for len(w.inflight) < w.window && !w.done && w.err == nil {
		if w.stop.Load() {
			w.done = true
			return
		}
		q, ok := w.next(int(w.counter.Add(1) - 1))
		if !ok {
			w.done = true
			return
		}
		for {
			w.id++
			if _, busy := w.inflight[w.id]; !busy {
				break
			}
		}
		m := new(dns.Msg)
		m.SetQuestion(q.name, dns.TypeA)
		m.Id = w.id
		b, err := m.Pack()
		if err != nil {
			w.err = fmt.Errorf("dns load: pack %s: %w", q.name, err)
			return
		}
		t := time.Now()
		if _, err := w.conn.Write(b); err != nil {
			// A refused write (ICMP from an earlier query) loses
			// this query: it times out.
			if !errors.Is(err, syscall.ECONNREFUSED) {
				w.err = fmt.Errorf("dns load: write: %w", err)
				return
			}
		}
		w.inflight[w.id] = inflight{q: q, sent: t}
		w.sent++
	}
}

// answer matches a reply to its query and checks it.
func (w *dnsWorker) answer(b []byte, now time.Time) {
	var m dns.Msg
	if err := m.Unpack(b); err != nil {
		w.fail(fmt.Sprintf("an unreadable reply: %v", err))
		return
	}
	f, ok := w.inflight[m.Id]
	if !ok || len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, f.q.name) {
		return // a late reply to a query given up on
	}
	delete(w.inflight, m.Id)
	if why := checkAnswer(&m, f.q); why != "" {
		w.fail(fmt.Sprintf("%s: %s", f.q.name, why))
		return
	}
	w.answered++
	w.latencies = append(w.latencies, now.Sub(f.sent))
}

func (w *dnsWorker) fail(why string) {
	w.failed++
	if w.firstWrong == "" {
		w.firstWrong = why
	}
}

// expire gives up on the queries out for longer than the timeout.
func (w *dnsWorker) expire(now time.Time) {
	for id, f := range w.inflight {
		if now.Sub(f.sent) >= w.timeout {
			delete(w.inflight, id)
			w.timedOut++
			if w.firstTimeout == "" {
				w.firstTimeout = fmt.Sprintf("%s: no answer within %s", f.q.name, w.timeout)
			}
		}
	}
}

// checkAnswer says what is wrong with a reply to q, "" if it is the
// expected answer: NOERROR with an A record of the expected address.
func checkAnswer(m *dns.Msg, q dnsQuery) string {
	switch {
	case !m.Response:
		return "not a response"
	case m.Rcode != dns.RcodeSuccess:
		return "rcode " + dns.RcodeToString[m.Rcode]
	case m.Truncated:
		return "truncated"
	}
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			got, _ := netip.AddrFromSlice(a.A.To4())
			if !q.want.IsValid() || got == q.want {
				return ""
			}
			return fmt.Sprintf("A %s, want %s", got, q.want)
		}
	}
	return fmt.Sprintf("no A record in %d answers", len(m.Answer))
}

// pinSelf pins every thread of this process (and so the threads it
// starts later, which inherit the mask, and the commands it runs) to cpu,
// and returns what gives every thread, those started meanwhile too, the
// mask the calling thread had. The load generator runs off the core the
// forwarders are pinned to.
func pinSelf(cpu int) (restore func(), err error) {
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, fmt.Errorf("CPU affinity: %w", err)
	}
	set.Set(cpu)
	restore = func() { setAffinityAll(&old) }
	if err := setAffinityAll(&set); err != nil {
		restore()
		return nil, fmt.Errorf("pin to CPU %d: %w", cpu, err)
	}
	return restore, nil
}

// setAffinityAll sets the CPU mask of every thread of this process.
func setAffinityAll(set *unix.CPUSet) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return nil
}
