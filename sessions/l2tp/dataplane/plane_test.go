package dataplane_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/testlns"
	"github.com/braid-router/braid/sessions/l2tp/avp"
	"github.com/braid-router/braid/sessions/l2tp/dataplane"
	"github.com/braid-router/braid/sessions/ppp/frame"
)

// The session's IDs: braid's (the LAC's) and the test LNS's.
const (
	boxTunnel, boxSession = 3, 4
	lnsTunnel, lnsSession = 7, 8
	boxLink, lnsLink      = "l2tp0", "lns0"
)

// rig is the four namespaces with braid's data plane in the box.
type rig struct {
	t testing.TB
	testlns.Rig
	link    *dataplane.Link
	conn    *net.UDPConn // the box's, connected to the LNS
	lnsConn *net.UDPConn // the LNS's, on port 1701
	plane   *dataplane.Plane
	lns     *testlns.LNS

	mu    sync.Mutex
	other [][]byte // what the plane handed to Config.Other
}

// newRig builds the namespaces and the box's link and socket; lns starts
// the test LNS on the LNS's socket, and the plane runs until the test
// ends. seq makes the plane's data messages sequenced.
func newRig(t testing.TB, lns, seq bool) *rig {
	t.Helper()
	nstest.RequireRoot(t)
	r := &rig{t: t, Rig: testlns.Rig{LAN: nstest.New(t), Box: nstest.New(t), LNS: nstest.New(t), Server: nstest.New(t)}}
	for _, c := range r.Commands() {
		nstest.Run(t, c[0], c[1:]...)
	}
	nstest.Do(t, r.Box, func() (err error) {
		if r.link, err = dataplane.CreateLink(boxLink, dataplane.MTU(1500), "tunnel/test"); err != nil {
			return err
		}
		r.conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(testlns.LNSIPv4+":1701")))
		return err
	})
	t.Cleanup(func() { r.link.Close(); r.conn.Close() })
	nstest.Do(t, r.LNS, func() (err error) {
		r.lnsConn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(testlns.LNSIPv4+":1701")))
		return err
	})
	t.Cleanup(func() { r.lnsConn.Close() })
	if lns {
		var l *testlns.LNS
		nstest.Do(t, r.LNS, func() (err error) {
			l, err = testlns.Start(r.lnsConn, testlns.Config{Link: lnsLink, MTU: 1500,
				TunnelID: lnsTunnel, SessionID: lnsSession, PeerTunnel: boxTunnel, PeerSession: boxSession})
			return err
		})
		r.lns = l
		t.Cleanup(func() {
			l.Close()
			if n := l.Malformed(); n > 0 {
				t.Errorf("the test LNS refused %d datagrams of the box: %s", n, strings.Join(l.Bad(), "; "))
			}
		})
	}
	p, err := dataplane.New(r.link, r.conn, dataplane.Config{
		LocalTunnel: boxTunnel, LocalSession: boxSession, PeerTunnel: lnsTunnel, PeerSession: lnsSession,
		Sequenced: seq,
		Other: func(pkt []byte) {
			r.mu.Lock()
			r.other = append(r.other, bytes.Clone(pkt))
			r.mu.Unlock()
		},
		Logger: nstest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.plane = p
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	if lns {
		for _, c := range r.TunnelRoutes(boxLink, lnsLink) {
			nstest.Run(t, c[0], c[1:]...)
		}
	}
	return r
}

// waitFor polls cond until it holds, for up to a minute.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ping runs ping in the LAN host and returns its output and whether it
// had answers.
func (r *rig) ping(args ...string) (string, bool) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", r.LAN, "ping", "-6", "-n"}, args...)...).CombinedOutput()
	return string(out), err == nil
}

// The link is braid's, not persistent, with the MTU the uplink allows; a
// LAN host reaches a server behind the LNS through it with ping and TCP,
// both ways; a packet of exactly the MTU passes and one octet more gets
// the kernel's Packet Too Big; what the box sends on the uplink is
// L2TP/PPP/IPv6 to tshark, with no malformed packet, and the test LNS
// finds nothing to refuse.
func TestTunnel(t *testing.T) {
	nstest.RequireBinary(t, "tshark")
	r := newRig(t, true, false)
	cap := r.capture()

	link := nstest.Run(t, "ip", "-n", r.Box, "-d", "link", "show", boxLink)
	for _, want := range []string{"mtu 1462", "alias braid:tunnel/test", "tun type tun"} {
		if !strings.Contains(link, want) {
			t.Errorf("ip link show %s: no %q in\n%s", boxLink, want, link)
		}
	}
	if strings.Contains(link, "persist on") {
		t.Errorf("the link is persistent:\n%s", link)
	}

	waitFor(t, "a ping through the tunnel", func() bool {
		_, ok := r.ping("-c", "1", "-W", "1", testlns.ServerTunnel)
		return ok
	})
	// 1414 octets of data + 8 (ICMPv6) + 40 (IPv6) = 1462, the MTU.
	if out, ok := r.ping("-c", "3", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1414", testlns.ServerTunnel); !ok {
		t.Errorf("a packet of exactly the tunnel's MTU does not pass:\n%s", out)
	}
	out, ok := r.ping("-c", "1", "-W", "2", "-M", "do", "-s", "1415", testlns.ServerTunnel)
	if ok || !strings.Contains(out, "mtu=1462") {
		t.Errorf("a packet one octet over the MTU: want Packet Too Big with mtu=1462 from the box, got:\n%s", out)
	}

	r.tcp(4 << 20)

	cap.Stop()
	for _, f := range []string{"_ws.malformed", "_ws.expert.severity >= error"} {
		if bad := cap.Fields(f, "frame.number", "_ws.col.Info"); len(bad) > 0 {
			t.Errorf("tshark: %d frames match %s: %s", len(bad), f, strings.Join(bad[:min(len(bad), 5)], "; "))
		}
	}
	udp := cap.Fields("udp.port == 1701", "frame.number")
	ipv6 := cap.Fields("udp.port == 1701 && l2tp.type == 0 && ppp.protocol == 0x0057 && ipv6", "l2tp.tunnel", "l2tp.session", "udp.dstport")
	if len(udp) == 0 || len(ipv6) != len(udp) {
		t.Errorf("tshark: %d UDP datagrams to or from port 1701, %d of them L2TP data with PPP and IPv6", len(udp), len(ipv6))
	}
	toLNS := 0
	for _, l := range ipv6 {
		switch l {
		case "7|8|1701":
			toLNS++
		default:
			if !strings.HasPrefix(l, "3|4|") {
				t.Errorf("tshark: a data message of tunnel|session|port %s, want 7|8|1701 to the LNS or 3|4|* from it", l)
			}
		}
	}
	if toLNS == 0 {
		t.Error("tshark: no data message to the LNS")
	}
	s := r.plane.Stats()
	t.Logf("the plane's stats: %+v", s)
	if s.OutPackets == 0 || s.InPackets == 0 || s.OutBytes < 4<<20 || s.InBytes < 4<<20 {
		t.Errorf("stats %+v: want both ways, over 4 MiB each", s)
	}
	// The kernel hands TCP bursts over whole (the link's offloads),
	// and they leave as UDP GSO datagrams.
	if s.OutDatagrams == 0 || s.OutDatagrams > s.OutPackets/2 {
		t.Errorf("stats %+v: %d packets left in %d datagrams, want at least 2 a datagram on average", s, s.OutPackets, s.OutDatagrams)
	}
}

// tcp sends n random octets from the LAN host to the server through the
// tunnel, which echoes them back; the LAN host checks it got them all.
func (r *rig) tcp(n int) {
	t := r.t
	t.Helper()
	var ln net.Listener
	nstest.Do(t, r.Server, func() (err error) {
		ln, err = net.Listen("tcp6", "["+testlns.ServerTunnel+"]:5001")
		return err
	})
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	var c net.Conn
	nstest.Do(t, r.LAN, func() (err error) {
		c, err = net.DialTimeout("tcp6", "["+testlns.ServerTunnel+"]:5001", 30*time.Second)
		return err
	})
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	data := make([]byte, n)
	rand.Read(data)
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		var lns string
		if r.lns != nil {
			lns = fmt.Sprintf("; the test LNS received %d, sent %d, refused %d", r.lns.Received(), r.lns.Sent(), r.lns.Malformed())
		}
		t.Fatalf("TCP through the tunnel: %v after %d of %d octets; the plane's stats %+v%s", err, len(got), n, r.plane.Stats(), lns)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("TCP through the tunnel: %d octets came back, not the %d sent", len(got), n)
	}
}

// Datagrams that are not IPv6 data of the session go to Other, whole;
// WriteFrame's frames reach the LNS as data messages of the session.
func TestOther(t *testing.T) {
	r := newRig(t, false, false)
	box := r.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	ipv6 := append(make([]byte, 40), "payload"...)
	ipv6[0] = 0x60
	binary.BigEndian.PutUint16(ipv6[4:], 7)
	data := func(tunnel, session, proto uint16, info []byte) []byte {
		b := binary.BigEndian.AppendUint16(nil, 0x0002)
		b = binary.BigEndian.AppendUint16(b, tunnel)
		b = binary.BigEndian.AppendUint16(b, session)
		return frame.Append(b, proto, info)
	}
	others := [][]byte{
		// A ZLB acknowledgement: a control message.
		{0xc8, 0x02, 0, 12, 0, boxTunnel, 0, 0, 0, 1, 0, 1},
		// LCP Echo-Request in the session.
		data(boxTunnel, boxSession, frame.ProtoLCP, []byte{9, 1, 0, 8, 1, 2, 3, 4}),
		// IPv6 for another session, another tunnel.
		data(boxTunnel, boxSession+1, frame.ProtoIPv6, ipv6),
		data(boxTunnel+1, boxSession, frame.ProtoIPv6, ipv6),
		// Not L2TP at all.
		[]byte("hello"),
	}
	for _, o := range others {
		if _, err := r.lnsConn.WriteToUDPAddrPort(o, box); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "Other to get every datagram", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.other) == len(others)
	})
	for i, o := range others {
		if !bytes.Equal(r.other[i], o) {
			t.Errorf("Other's datagram %d: % x, want % x", i, r.other[i], o)
		}
	}
	if err := r.plane.WriteFrame(frame.ProtoLCP, []byte{10, 1, 0, 8, 1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	// The kernel's own IPv6 (MLD reports) may come first.
	buf := make([]byte, 2000)
	r.lnsConn.SetReadDeadline(time.Now().Add(30 * time.Second))
	n := 0
	for n == 0 || bytes.HasPrefix(buf[6:], []byte{0xff, 0x03, 0x00, 0x57}) {
		var err error
		if n, _, err = r.lnsConn.ReadFromUDPAddrPort(buf); err != nil {
			t.Fatal(err)
		}
	}
	if want := data(lnsTunnel, lnsSession, frame.ProtoLCP, []byte{10, 1, 0, 8, 1, 2, 3, 4}); !bytes.Equal(buf[:n], want) {
		t.Errorf("WriteFrame sent % x, want % x", buf[:n], want)
	}
	if s := r.plane.Stats(); s.Other != uint64(len(others)) || s.InPackets != 0 {
		t.Errorf("stats %+v: want %d other, no IPv6 in", s, len(others))
	}
}

// The link goes with braid's descriptor; a second link of the same name
// is refused while it is there.
func TestLinkVanishes(t *testing.T) {
	ns := nstest.New(t)
	var l *dataplane.Link
	nstest.Do(t, ns, func() (err error) {
		l, err = dataplane.CreateLink("l2tp9", dataplane.MTU(1492), "tunnel/x")
		return err
	})
	out := nstest.Run(t, "ip", "-n", ns, "link", "show", "l2tp9")
	if !strings.Contains(out, "mtu 1454") || !strings.Contains(out, "state UNKNOWN") && !strings.Contains(out, ",UP") {
		t.Errorf("want the link up with mtu 1454:\n%s", out)
	}
	nstest.Do(t, ns, func() error {
		if _, err := dataplane.CreateLink("l2tp9", 1400, "tunnel/x"); err == nil {
			return errors.New("a second link of the same name was created")
		}
		if _, err := dataplane.CreateLink("l2tp8", dataplane.MTU(1300), "tunnel/x"); err == nil {
			return errors.New("a link below IPv6's minimum MTU was created")
		}
		return nil
	})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the link to vanish", func() bool {
		return exec.Command("ip", "-n", ns, "link", "show", "l2tp9").Run() != nil
	})
}

// capture is tshark on the box's uplink.
func (r *rig) capture() *nstest.Capture {
	return nstest.StartCapture(r.t, r.Box, testlns.Uplink, "udp port 1701")
}

// A sequenced session's data messages carry Ns, one more in each, whatever
// they carry (the kernel's IPv6, a LAN host's, WriteFrame's LCP), and Nr
// 0.
func TestSequenced(t *testing.T) {
	r := newRig(t, false, true)
	nstest.Run(t, "ip", "-n", r.Box, "-6", "route", "add", "2001:db8:2::/64", "dev", boxLink)
	// No LNS answers: the pings only make data messages.
	r.ping("-c", "3", "-i", "0.2", "-W", "1", testlns.ServerTunnel)
	if err := r.plane.WriteFrame(frame.ProtoLCP, []byte{9, 1, 0, 8, 1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2000)
	var ns []uint16
	pings, lcp := 0, 0
	for lcp == 0 || pings < 3 {
		r.lnsConn.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := r.lnsConn.Read(buf)
		if err != nil {
			t.Fatalf("after %d pings, %d LCP: %v", pings, lcp, err)
		}
		h, payload, err := avp.Parse(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		if h.Control || !h.Sequenced || h.TunnelID != lnsTunnel || h.SessionID != lnsSession || h.Nr != 0 {
			t.Fatalf("header %+v, want a sequenced data message of tunnel %d session %d", h, lnsTunnel, lnsSession)
		}
		f, err := frame.Parse(payload)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case f.Protocol == frame.ProtoLCP:
			lcp++
		case f.Protocol == frame.ProtoIPv6 && len(f.Info) > 40 && f.Info[6] == 58 && f.Info[40] == 128:
			pings++ // an echo request, not the kernel's MLD
		}
		ns = append(ns, h.Ns)
	}
	for i := 1; i < len(ns); i++ {
		if ns[i] != ns[i-1]+1 {
			t.Fatalf("Ns %v: not one more each time", ns)
		}
	}
}

// A socket that refuses UDP GSO costs the batch it refused, and the plane
// then sends each packet in a datagram of its own. The kernel refuses UDP
// GSO on a socket without UDP checksums (SO_NO_CHECK). With such a
// socket, GSO or not, this rig's TCP echo (r.tcp) stalled after a few
// hundred kilobytes while the test LNS sent UDP GSO datagrams to the box
// (it went through with the LNS sending one datagram per packet), for a
// reason not found; one-way transfers go through, and the test counts
// their datagrams.
func TestGSOFallback(t *testing.T) {
	r := newRig(t, true, false)
	raw, err := r.conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	raw.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_NO_CHECK, 1) })
	if serr != nil {
		t.Fatal(serr)
	}
	send := func() {
		var ln net.Listener
		nstest.Do(t, r.Server, func() (err error) {
			ln, err = net.Listen("tcp6", "["+testlns.ServerTunnel+"]:0")
			return err
		})
		t.Cleanup(func() { ln.Close() })
		go func() {
			if c, err := ln.Accept(); err == nil {
				io.Copy(io.Discard, c)
				c.Close()
			}
		}()
		var c net.Conn
		nstest.Do(t, r.LAN, func() (err error) {
			c, err = net.DialTimeout("tcp6", ln.Addr().String(), 30*time.Second)
			return err
		})
		t.Cleanup(func() { c.Close() })
		go func() {
			c.SetWriteDeadline(time.Now().Add(time.Minute))
			c.Write(make([]byte, 4<<20))
		}()
	}
	send()
	waitFor(t, "the refused GSO batch", func() bool { return r.plane.Stats().Dropped > 0 })
	s1 := r.plane.Stats()
	send()
	waitFor(t, "a second transfer's packets", func() bool { return r.plane.Stats().OutPackets > s1.OutPackets+100 })
	s2 := r.plane.Stats()
	t.Logf("the plane's stats: %+v, then %+v", s1, s2)
	if d, p := s2.OutDatagrams-s1.OutDatagrams, s2.OutPackets-s1.OutPackets; d != p {
		t.Errorf("after the fallback, %d packets left in %d datagrams, want one each", p, d)
	}
}
