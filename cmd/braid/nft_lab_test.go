package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
)

// labBox runs braid in a lab's box, with the test's own run and state
// directories.
type labBox struct {
	*box
	l *lab.Lab
}

func newLabBox(t *testing.T) *labBox {
	t.Helper()
	l := labtest.New(t)
	return &labBox{box: labBoxOf(t, l), l: l}
}

// braidOK runs braid in the box and fails the test unless it exits 0.
func (b *labBox) braidOK(args ...string) string {
	b.t.Helper()
	return b.must(0, args...).stdout
}

// whoami asks a whoami server from a role and returns the address it saw
// ("error: ..." when it did not answer within two seconds, which some
// checks expect).
func (b *labBox) whoami(role lab.Role, network, server string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	got, err := b.l.Whoami(ctx, role, network, server, "")
	if err != nil {
		return "error: " + err.Error()
	}
	return got.Addr().String()
}

// run runs a command in a role's namespace and fails the test if it fails.
func (b *labBox) run(role lab.Role, name string, args ...string) string {
	b.t.Helper()
	out, err := b.l.Run(context.Background(), role, name, args...)
	if err != nil {
		b.t.Fatalf("%s %s in %s: %v", name, strings.Join(args, " "), role, err)
	}
	return out
}

// serve starts whoami services in a role's namespace (stopped with the
// lab).
func (b *labBox) serve(name string, role lab.Role, addrs ...string) {
	b.t.Helper()
	var args []string
	for _, a := range addrs {
		args = append(args, "-whoami", a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.l.Start(ctx, lab.Process{Name: name, Role: role, Serve: args}); err != nil {
		b.t.Fatal(err)
	}
}

// txPackets reads an interface's transmitted packets in a role's namespace.
func (b *labBox) txPackets(role lab.Role, dev string) uint64 {
	b.t.Helper()
	var links []struct {
		Stats struct {
			TX struct {
				Packets uint64 `json:"packets"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(b.run(role, "ip", "-j", "-s", "link", "show", "dev", dev)), &links); err != nil || len(links) != 1 {
		b.t.Fatalf("ip -s link show %s: %v", dev, err)
	}
	return links[0].Stats.TX.Packets
}

// burst sends n UDP datagrams from a role's namespace to dst (nothing
// listens: the point is which link they leave by).
func (b *labBox) burst(role lab.Role, dst string, n int) {
	b.t.Helper()
	err := b.l.Do(role, func() error {
		pc, err := net.ListenPacket("udp", ":0")
		if err != nil {
			return err
		}
		defer pc.Close()
		to, err := net.ResolveUDPAddr("udp", dst)
		if err != nil {
			return err
		}
		for range n {
			if _, err := pc.WriteTo([]byte("braid"), to); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.t.Fatal(err)
	}
}

// TestNftLabNATAndRouting is specs/lab.yaml with real packets: the LAN
// reaches the Internet server over IPv4 only once braid NATs it (the server
// sees the box's uplink address), over IPv6 without NAT (the server sees
// the client's own address), and a routes: destination leaves by its
// uplink, as the interfaces' counters show. Destroy takes it all away.
func TestNftLabNATAndRouting(t *testing.T) {
	b := newLabBox(t)
	server4 := netip.AddrPortFrom(netip.MustParseAddr(lab.ServerV4), lab.WhoamiPort).String()
	server6 := netip.AddrPortFrom(netip.MustParseAddr(lab.ServerV6), lab.WhoamiPort).String()
	steered4 := netip.AddrPortFrom(netip.MustParseAddr(lab.SteeredServerV4), lab.WhoamiPort).String()
	steered6 := netip.AddrPortFrom(netip.MustParseAddr(lab.SteeredServerV6), lab.WhoamiPort).String()
	if got := b.whoami(lab.RoleLAN, "tcp", server4); !strings.HasPrefix(got, "error") {
		t.Fatalf("before braid, the LAN reached the server from %s", got)
	}
	b.braidOK("apply", "-f", "../../specs/lab.yaml")
	// The probe before braid left the LAN client's neighbour entry for its
	// gateway FAILED, and the kernel answers "no route to host" until it
	// tries again; a real client would, a few seconds later.
	if _, err := b.l.Run(context.Background(), lab.RoleLAN, "ip", "neigh", "flush", "all"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what, network, server, want string
	}{
		{"IPv4, NATed to isp1's address", "tcp", server4, lab.BoxWAN1V4},
		{"IPv4 over UDP, NATed", "udp", server4, lab.BoxWAN1V4},
		{"IPv6, routed without NAT", "tcp", server6, lab.LANClientV6},
		{"routes: IPv4 destination, NATed to isp2's address", "tcp", steered4, lab.BoxWAN2V4},
		{"routes: IPv6 destination, not NATed", "tcp", steered6, lab.LANClientV6},
	} {
		if got := b.whoami(lab.RoleLAN, c.network, c.server); got != c.want {
			t.Errorf("%s: the server saw %s, want %s", c.what, got, c.want)
		}
	}
	// Which link a routes: destination leaves by, from the counters: a
	// burst of datagrams to it leaves by wan2, not wan1; and the other way
	// round for the default route.
	const n = 300
	for _, c := range []struct {
		dst       string
		via, idle string
	}{
		{netip.AddrPortFrom(netip.MustParseAddr(lab.SteeredServerV4), 9).String(), lab.BoxWAN2Dev, lab.BoxWAN1Dev},
		{netip.AddrPortFrom(netip.MustParseAddr(lab.SteeredServerV6), 9).String(), lab.BoxWAN2Dev, lab.BoxWAN1Dev},
		{netip.AddrPortFrom(netip.MustParseAddr(lab.ServerV4), 9).String(), lab.BoxWAN1Dev, lab.BoxWAN2Dev},
	} {
		via, idle := b.txPackets(lab.RoleBox, c.via), b.txPackets(lab.RoleBox, c.idle)
		b.burst(lab.RoleLAN, c.dst, n)
		// Wait until the datagrams have left by some link.
		var dVia, dIdle uint64
		for deadline := time.Now().Add(30 * time.Second); ; {
			dVia, dIdle = b.txPackets(lab.RoleBox, c.via)-via, b.txPackets(lab.RoleBox, c.idle)-idle
			if dVia+dIdle >= n || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if dVia < n || dIdle > n/10 {
			t.Errorf("%d datagrams to %s: %s sent %d, %s sent %d; want them all on %s", n, c.dst, c.via, dVia, c.idle, dIdle, c.via)
		}
	}
	b.braidOK("destroy", "--yes")
	if got := b.whoami(lab.RoleLAN, "tcp", server4); !strings.HasPrefix(got, "error") {
		t.Errorf("after destroy, the LAN still reached the server from %s", got)
	}
	if out, err := b.l.Run(context.Background(), lab.RoleBox, "nft", "list", "tables"); err != nil || strings.Contains(out, "braid") {
		t.Errorf("after destroy: nft list tables: %q, %v", out, err)
	}
}

// TestNftLabFirewall checks the firewall of specs/lab.yaml with real
// packets: from the WAN side the box answers on the port the spec opens
// and not on another one (which the LAN does reach, so it is listening);
// the port forwards reach the LAN client over IPv4 (DNAT) and IPv6
// (routed), and nothing else of the LAN is reachable from the WAN;
// neighbour discovery and path MTU discovery work across it.
func TestNftLabFirewall(t *testing.T) {
	b := newLabBox(t)
	b.braidOK("apply", "-f", "../../specs/lab.yaml")
	wan1v4, wan1v6 := netip.MustParseAddr(lab.BoxWAN1V4), netip.MustParseAddr(lab.BoxWAN1V6)
	lan4, lan6 := netip.MustParseAddr(lab.LANClientV4), netip.MustParseAddr(lab.LANClientV6)
	ap := func(a netip.Addr, port uint16) string { return netip.AddrPortFrom(a, port).String() }
	b.serve("boxsvc", lab.RoleBox, ap(wan1v4, 2222), ap(wan1v4, 2223), ap(wan1v6, 2222), ap(wan1v6, 2223))
	b.serve("lansvc", lab.RoleLAN, ap(lan4, 8080), ap(lan6, 8080), ap(lan4, 8081), ap(lan6, 8081))

	isp1v4, isp1v6 := lab.ISP1GatewayV4, lab.ISP1GatewayV6
	inet4, inet6 := lab.InetISP1V4, lab.InetISP1V6
	var wg sync.WaitGroup
	for _, c := range []struct {
		what   string
		from   lab.Role
		server string
		want   string // "" for no answer
	}{
		{"open port over IPv4", lab.RoleISP1, ap(wan1v4, 2222), isp1v4},
		{"open port over IPv6", lab.RoleISP1, ap(wan1v6, 2222), isp1v6},
		{"closed port over IPv4", lab.RoleISP1, ap(wan1v4, 2223), ""},
		{"closed port over IPv6", lab.RoleISP1, ap(wan1v6, 2223), ""},
		{"closed port from the Internet", lab.RoleInet, ap(wan1v4, 2223), ""},
		{"the closed port from the LAN (it listens)", lab.RoleLAN, ap(wan1v4, 2223), lan4.String()},
		{"IPv4 port forward", lab.RoleInet, ap(wan1v4, 8080), inet4},
		{"IPv6 forward, routed to the LAN client", lab.RoleInet, ap(lan6, 8080), inet6},
		{"IPv4 port not forwarded", lab.RoleInet, ap(wan1v4, 8081), ""},
		{"IPv6 LAN port not forwarded", lab.RoleInet, ap(lan6, 8081), ""},
		{"the LAN port not forwarded, from the box (it listens)", lab.RoleBox, ap(lan6, 8081), lab.BoxLANV6},
	} {
		// At once: a check that expects no answer waits for its timeout.
		wg.Go(func() {
			got := b.whoami(c.from, "tcp", c.server)
			switch {
			case c.want == "" && !strings.HasPrefix(got, "error"):
				t.Errorf("%s: %s reached %s from %s", c.what, c.from, c.server, got)
			case c.want != "" && got != c.want:
				t.Errorf("%s: %s to %s: %s, want %s", c.what, c.from, c.server, got, c.want)
			}
		})
	}
	wg.Wait()

	// Neighbour discovery: with every neighbour forgotten, isp1 and the box
	// find each other again through the firewall, both ways.
	b.run(lab.RoleBox, "ip", "-6", "neigh", "flush", "all")
	b.run(lab.RoleISP1, "ip", "-6", "neigh", "flush", "all")
	if out, err := b.l.Run(context.Background(), lab.RoleISP1, "ping", "-6", "-c", "2", "-W", "2", lab.BoxWAN1V6); err != nil {
		t.Errorf("isp1 cannot ping the box over IPv6 after a neighbour flush: %v\n%s", err, out)
	}
	b.run(lab.RoleBox, "ip", "-6", "neigh", "flush", "all")
	b.run(lab.RoleISP1, "ip", "-6", "neigh", "flush", "all")
	if got := b.whoami(lab.RoleBox, "tcp", netip.AddrPortFrom(netip.MustParseAddr(lab.ServerV6), lab.WhoamiPort).String()); got != lab.BoxWAN1V6 {
		t.Errorf("the box reaches the server over IPv6 after a neighbour flush from %s", got)
	}
	if out := b.run(lab.RoleBox, "ip", "-6", "neigh", "show", "dev", lab.BoxWAN1Dev); !strings.Contains(out, lab.ISP1GatewayV6) {
		t.Errorf("the box has no neighbour entry for its gateway:\n%s", out)
	}

	// Path MTU discovery: a link behind isp1 carries only 1280 bytes, which
	// neither end sees; a LAN client's upload gets through because isp1's
	// Packet Too Big (Fragmentation Needed over IPv4) crosses the box back
	// to it.
	b.run(lab.RoleISP1, "ip", "link", "set", "dev", lab.ISPUpDev, "mtu", "1280")
	for _, server := range []netip.Addr{netip.MustParseAddr(lab.ServerV4), netip.MustParseAddr(lab.ServerV6)} {
		addr := netip.AddrPortFrom(server, 9000).String()
		got, err := upload(b.l, addr, 256<<10)
		if err != nil || got != 256<<10 {
			t.Errorf("upload of 256 KiB to %s across a 1280-byte link: server got %d bytes, %v", addr, got, err)
		}
		if out := b.run(lab.RoleLAN, "ip", "route", "get", server.String()); !strings.Contains(out, "mtu 1280") {
			t.Errorf("the LAN client learnt no path MTU to %s:\n%s", server, out)
		}
	}
}

// upload sends size bytes from the LAN client to a sink at addr in the
// Internet core and returns how many the sink counted.
func upload(l *lab.Lab, addr string, size int) (int, error) {
	var ln net.Listener
	if err := l.Do(lab.RoleInet, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		return 0, err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintln(c, n)
	}()
	var got int
	err := l.Do(lab.RoleLAN, func() error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write(make([]byte, size)); err != nil {
			return err
		}
		c.(*net.TCPConn).CloseWrite()
		reply, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		got, err = strconv.Atoi(strings.TrimSpace(string(reply)))
		return err
	})
	return got, err
}
