package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Replies a test crafts: every way a reply can be someone else's, sent
// before the right one, or instead of it.

// crafted is a far end that answers each request with wrong replies, and
// then with the right one while answer is set.
type crafted struct {
	answer atomic.Bool
	// sent gets, for each request, when its replies were sent. Delivery
	// through a veth is synchronous (the receiving namespace has queued a
	// packet before the sender's sendmsg returns), so by then the prober
	// has every one of them.
	sent chan time.Time
}

// craftedReply is one crafted reply: its bytes and where it comes from.
type craftedReply struct {
	what string
	b    []byte
	from netip.Addr
}

// wrongEchoReplies are replies to e that are not its reply, from the
// target unless they say otherwise; other is another address of the far
// end.
func wrongEchoReplies(e *echo, target, other netip.Addr) []craftedReply {
	rs := []craftedReply{
		{"another identifier", reply(e, func(b []byte) { b[5] ^= 1 }), target},
		{"another sequence number", reply(e, func(b []byte) { b[7] ^= 1 }), target},
		{"other data", reply(e, func(b []byte) { b[len(b)-1] ^= 1 }), target},
		{"code 1", reply(e, func(b []byte) { b[1] = 1 }), target},
		{"the right reply from another address", reply(e, nil), other},
	}
	if !e.v6 {
		bad := reply(e, nil)
		bad[2] ^= 0xff
		rs = append(rs, craftedReply{"a wrong checksum", bad, target})
	}
	return rs
}

// echoResponder answers the echo requests of namespace far (whose kernel
// does not) until the test ends.
func echoResponder(t *testing.T, far string, target, other netip.Addr) *crafted {
	cr := &crafted{sent: make(chan time.Time, 16)}
	network, laddr := "ip4:icmp", "0.0.0.0"
	if target.Is6() {
		network, laddr = "ip6:ipv6-icmp", "::"
	}
	var c net.PacketConn
	nstest.Do(t, far, func() (err error) {
		c, err = net.ListenPacket(network, laddr)
		return err
	})
	t.Cleanup(func() { c.Close() })
	// write sends b to dst from src, a local address of far.
	var write func(b []byte, src netip.Addr, dst net.Addr) error
	if target.Is6() {
		p := ipv6.NewPacketConn(c)
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeEchoRequest)
		if err := p.SetICMPFilter(&f); err != nil {
			t.Fatal(err)
		}
		write = func(b []byte, src netip.Addr, dst net.Addr) error {
			_, err := p.WriteTo(b, &ipv6.ControlMessage{Src: src.AsSlice()}, dst)
			return err
		}
	} else {
		p := ipv4.NewPacketConn(c)
		var f ipv4.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv4.ICMPTypeEcho)
		if err := p.SetICMPFilter(&f); err != nil {
			t.Fatal(err)
		}
		write = func(b []byte, src netip.Addr, dst net.Addr) error {
			_, err := p.WriteTo(b, &ipv4.ControlMessage{Src: src.AsSlice()}, dst)
			return err
		}
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			m, ok := parseEcho(buf[:n])
			if !ok || len(m.data) != echoDataLen {
				continue
			}
			e := &echo{v6: target.Is6(), id: m.id, seq: m.seq}
			copy(e.data[:], m.data)
			rs := wrongEchoReplies(e, target, other)
			if cr.answer.Load() {
				rs = append(rs, craftedReply{"the reply", reply(e, nil), target})
			}
			for _, r := range rs {
				if err := write(r.b, r.from, from); err != nil {
					t.Errorf("send %s: %v", r.what, err)
				}
			}
			cr.sent <- time.Now()
		}
	}()
	return cr
}

// wantOnlyTheReply checks, with a far end that sends wrong replies, that
// a probe of tg times out while they are all it gets, and succeeds once
// the right reply follows them.
func wantOnlyTheReply(t *testing.T, prober string, p *Prober, tg Target, cr *crafted) {
	t.Helper()
	const within = 3 * time.Second
	start := time.Now()
	took, err := probeIn(t, prober, p, tg, within)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%s with only wrong replies: %v after %s, want a timeout", tg, err, took)
	}
	select {
	case at := <-cr.sent:
		if !at.Before(start.Add(within)) {
			t.Errorf("%s: the wrong replies were sent after the probe's deadline: proves nothing", tg)
		}
	default:
		t.Errorf("%s: the far end never saw the request", tg)
	}
	cr.answer.Store(true)
	wantAnswer(t, prober, p, tg)
	// The far end reports after its last reply, which may come after
	// the probe has returned.
	select {
	case <-cr.sent:
	case <-time.After(answerWithin):
		t.Errorf("%s: the far end never saw the second request", tg)
	}
}

// TestEchoIgnoresOtherReplies: replies with another identifier, sequence
// number, data or code, with a wrong checksum, or from another address
// than the target's are not the reply.
func TestEchoIgnoresOtherReplies(t *testing.T) {
	nstest.RequireRoot(t)
	prober, far := host(t), host(t)
	nstest.In(t, far, "sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=1", "net.ipv6.icmp.echo_ignore_all=1")
	veth(t, prober, "p1", []string{"10.1.0.1/24", "fd01::1/64"}, far, "f1", []string{"10.1.0.2/24", "fd01::2/64"})
	for _, a := range []string{"10.9.0.2/32", "fd09::2/128"} {
		addAddr(t, far, "lo", a)
	}
	for _, fam := range []struct{ name, target, other string }{
		{"IPv4", "10.1.0.2", "10.9.0.2"},
		{"IPv6", "fd01::2", "fd09::2"},
	} {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			target, other := netip.MustParseAddr(fam.target), netip.MustParseAddr(fam.other)
			tg := Target{Kind: ICMP, Addr: fam.target}
			// Nothing but the test's replies: the far end's kernel does
			// not answer.
			if _, err := probeIn(t, prober, &Prober{}, tg, silentFor); err == nil {
				t.Fatal("the far end's kernel answers echoes")
			}
			wantOnlyTheReply(t, prober, &Prober{}, tg, echoResponder(t, far, target, other))
		})
	}
}

// dnsResponder answers the DNS queries to 10.9.0.1:5354 in namespace far
// with wrong replies: another ID, the query itself (not a response), a
// header cut short, the right response from another port and from
// another address.
func dnsResponder(t *testing.T, far string) *crafted {
	cr := &crafted{sent: make(chan time.Time, 16)}
	listen := func(addr string) *net.UDPConn {
		var c net.PacketConn
		nstest.Do(t, far, func() (err error) {
			c, err = net.ListenPacket("udp", addr)
			return err
		})
		t.Cleanup(func() { c.Close() })
		return c.(*net.UDPConn)
	}
	server, otherPort, otherAddr := listen("10.9.0.1:5354"), listen("10.9.0.1:5355"), listen("10.9.0.2:5354")
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := server.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			h, err := parseDNSHeader(buf[:n])
			if err != nil {
				continue
			}
			q := buf[:n]
			response := func(id uint16) []byte {
				b := append([]byte(nil), q...)
				binary.BigEndian.PutUint16(b[0:], id)
				binary.BigEndian.PutUint16(b[2:], h.Flags|dnsFlagQR|2) // SERVFAIL
				return b
			}
			type send struct {
				c *net.UDPConn
				b []byte
			}
			sends := []send{
				{server, response(h.ID ^ 1)},
				{server, q},
				{server, response(h.ID)[:dnsHeaderLen-1]},
				{otherPort, response(h.ID)},
				{otherAddr, response(h.ID)},
			}
			if cr.answer.Load() {
				sends = append(sends, send{server, response(h.ID)})
			}
			for _, s := range sends {
				if _, err := s.c.WriteToUDPAddrPort(s.b, from); err != nil {
					t.Errorf("send: %v", err)
				}
			}
			cr.sent <- time.Now()
		}
	}()
	return cr
}

// TestDNSIgnoresOtherReplies: a datagram that is not a response with the
// query's ID, or that comes from another address or port than the
// server's, is not the response.
func TestDNSIgnoresOtherReplies(t *testing.T) {
	r := newRig(t)
	cr := dnsResponder(t, r.far)
	wantOnlyTheReply(t, r.prober, &Prober{Interface: "p1"}, Target{Kind: DNS, Addr: "10.9.0.1:5354", Name: "probe.test"}, cr)
}
