package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// testResolver serves A queries on loopback: "ok<i>.t." answers
// addrOf(i), "wrong<i>.t." a different address, "drop<i>.t." nothing,
// anything else SERVFAIL.
func testResolver(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		name := q.Question[0].Name
		var i int
		m := new(dns.Msg)
		m.SetReply(q)
		switch {
		case strings.HasPrefix(name, "drop"):
			return
		case sscan(name, "ok%d.t.", &i):
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: addrOf(i).AsSlice()})
		case sscan(name, "wrong%d.t.", &i):
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: addrOf(i + 1).AsSlice()})
		default:
			m.Rcode = dns.RcodeServerFailure
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

func sscan(s, format string, i *int) bool {
	n, err := fmt.Sscanf(s, format, i)
	return err == nil && n == 1
}

func addrOf(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{100, byte(64 + i>>16), byte(i >> 8), byte(i)})
}

func TestDNSLoadCountsAnswers(t *testing.T) {
	server := testResolver(t)
	const n = 3000
	// Every 100th query gets a wrong address, every 500th none, one
	// (the 7th) a SERVFAIL.
	next := func(i int) (dnsQuery, bool) {
		if i >= n {
			return dnsQuery{}, false
		}
		switch {
		case i == 7:
			return dnsQuery{name: fmt.Sprintf("other%d.t.", i), want: addrOf(i)}, true
		case i%500 == 499:
			return dnsQuery{name: fmt.Sprintf("drop%d.t.", i), want: addrOf(i)}, true
		case i%100 == 99:
			return dnsQuery{name: fmt.Sprintf("wrong%d.t.", i), want: addrOf(i)}, true
		}
		return dnsQuery{name: fmt.Sprintf("ok%d.t.", i), want: addrOf(i)}, true
	}
	r, err := runDNSLoad(context.Background(), dnsLoadConfig{server: server, conc: 20, sockets: 3, timeout: 500 * time.Millisecond, next: next})
	if err != nil {
		t.Fatal(err)
	}
	const drops, wrong = n / 500, n/100 - n/500
	if r.sent != n || r.timedOut != drops || r.failed != wrong+1 || r.answered != n-drops-wrong-1 {
		t.Errorf("sent %d, answered %d, failed %d, timed out %d; want %d, %d, %d, %d", r.sent, r.answered, r.failed, r.timedOut, n, n-drops-wrong-1, wrong+1, drops)
	}
	if len(r.latencies) != r.answered || r.qps() <= 0 {
		t.Errorf("%d latencies for %d answers, %.0f qps", len(r.latencies), r.answered, r.qps())
	}
	if !strings.HasPrefix(r.firstFailure, "wrong") && !strings.HasPrefix(r.firstFailure, "other") {
		t.Errorf("the first failure shown is %q, want a wrong answer's before a timeout's", r.firstFailure)
	}
	var fe *failuresError
	if err := r.check(); !errors.As(err, &fe) {
		t.Errorf("check of a run with %.1f%% failures: %v, want a failuresError", 100*r.failures(), err)
	}
}

func TestDNSLoadDuration(t *testing.T) {
	server := testResolver(t)
	next := func(i int) (dnsQuery, bool) {
		return dnsQuery{name: fmt.Sprintf("ok%d.t.", i), want: addrOf(i)}, true
	}
	r, err := runDNSLoad(context.Background(), dnsLoadConfig{server: server, conc: 8, sockets: 2, duration: 200 * time.Millisecond, timeout: time.Second, next: next})
	if err != nil {
		t.Fatal(err)
	}
	if r.sent == 0 || r.answered != r.sent || r.failed+r.timedOut != 0 {
		t.Errorf("sent %d, answered %d, failed %d, timed out %d", r.sent, r.answered, r.failed, r.timedOut)
	}
	if err := r.check(); err != nil {
		t.Error(err)
	}
}

func TestDNSLoadNothingListens(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := netip.MustParseAddrPort(pc.LocalAddr().String())
	pc.Close()
	next := func(i int) (dnsQuery, bool) {
		return dnsQuery{name: fmt.Sprintf("ok%d.t.", i)}, i < 10
	}
	r, err := runDNSLoad(context.Background(), dnsLoadConfig{server: server, conc: 2, sockets: 1, timeout: 100 * time.Millisecond, next: next})
	if err != nil {
		t.Fatal(err)
	}
	if r.sent != 10 || r.timedOut != 10 || r.answered != 0 {
		t.Errorf("sent %d, answered %d, timed out %d; want 10, 0, 10", r.sent, r.answered, r.timedOut)
	}
	if r.check() == nil {
		t.Error("check passed a run with no answer")
	}
}

// pinSelf pins every thread, and restore gives them their mask back.
func TestPinSelf(t *testing.T) {
	var before unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		t.Fatal(err)
	}
	if !before.IsSet(0) {
		t.Skip("CPU 0 is not in this process's mask")
	}
	restore, err := pinSelf(0)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		var got unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &got); err != nil {
			continue // gone
		}
		if got.Count() != 1 || !got.IsSet(0) {
			t.Errorf("thread %d: %d CPUs in its mask after pinSelf(0)", tid, got.Count())
		}
	}
	restore()
	var after unix.CPUSet
	if err := unix.SchedGetaffinity(0, &after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("mask after restore has %d CPUs, before %d", after.Count(), before.Count())
	}
}
