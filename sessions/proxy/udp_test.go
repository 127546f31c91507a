package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/session"
)

// boxEnv marks the test binary re-run inside the box's namespace.
const boxEnv = "BRAID_PROXY_UDP_TEST_BOX"

// inBox runs the calling test again in a new network namespace, as a
// process of its own, and reports false; in that process it reports
// true. The relay opens sockets from goroutines of its own: the whole
// process must be in the box's namespace, as braid is.
func inBox(t *testing.T) bool {
	t.Helper()
	if os.Getenv(boxEnv) != "" {
		return true
	}
	nstest.RequireRoot(t)
	nstest.RequireBinary(t, "ss-server")
	box := nstest.New(t)
	cmd := exec.Command("ip", "netns", "exec", box, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), boxEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in the box's namespace: %v\n%s", err, out)
	}
	t.Logf("in the box's namespace:\n%s", out)
	return false
}

// Addresses of the UDP relay's namespaces: the LAN client behind the
// box, the peer beyond it, and the servers on the loopback of the
// Internet behind the peer (the box and the peer route to them); the
// peer reaches the Internet from udpOut4 and udpOut6.
var (
	udpClient4 = netip.MustParseAddr("192.168.77.2")
	udpClient6 = netip.MustParseAddr("fd77::2")
	udpPeer4   = "10.77.0.2"
	udpOut4    = netip.MustParseAddr("10.78.0.1")
	udpOut6    = netip.MustParseAddr("fd79::1")
	udpServer4 = netip.MustParseAddrPort("198.51.100.9:7000")
	udpServer6 = netip.MustParseAddrPort("[2001:db8:9::9]:7000")
)

const udpPassword = "udp-not-a-secret"

// udpRig is the box (this process's namespace), a LAN client and a peer
// running ss-server -u with two ciphers, with the steering compile
// writes for udp: peer, by hand.
type udpRig struct {
	t              *testing.T
	client, peer   string
	inet           string
	ctx            context.Context
	cancel         context.CancelFunc
	p              *Proxy
	done           chan error
	states         chan string
	ports          map[string]int
	server4, other netip.AddrPort
}

func newUDPRig(t *testing.T) *udpRig {
	r := &udpRig{t: t, client: nstest.New(t), peer: nstest.New(t), inet: nstest.New(t), ports: map[string]int{"chacha20-ietf-poly1305": 8388, "aes-128-gcm": 8389}}
	run := func(args ...string) { nstest.Run(t, args[0], args[1:]...) }
	run("ip", "link", "set", "lo", "up")
	run("ip", "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", r.client)
	run("ip", "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", r.peer)
	nstest.In(t, r.peer, "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", r.inet)
	for _, c := range [][]string{
		{"sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"},
		{"ip", "addr", "add", "192.168.77.1/24", "dev", "lan0"},
		{"ip", "addr", "add", "fd77::1/64", "dev", "lan0", "nodad"},
		{"ip", "addr", "add", "10.77.0.1/24", "dev", "up0"},
		{"ip", "addr", "add", "fd78::1/64", "dev", "up0", "nodad"},
		{"ip", "link", "set", "lan0", "up"},
		{"ip", "link", "set", "up0", "up"},
		{"ip", "route", "add", "default", "via", udpPeer4},
		{"ip", "-6", "route", "add", "default", "via", "fd78::2"},
		{"ip", "rule", "add", "fwmark", "0x1c16", "lookup", "7190"},
		{"ip", "-6", "rule", "add", "fwmark", "0x1c16", "lookup", "7190"},
		{"ip", "route", "add", "local", "default", "dev", "lo", "table", "7190"},
		{"ip", "-6", "route", "add", "local", "default", "dev", "lo", "table", "7190"},
	} {
		run(c...)
	}
	for ns, cmds := range map[string][][]string{
		r.client: {
			{"ip", "addr", "add", udpClient4.String() + "/24", "dev", "eth0"},
			{"ip", "addr", "add", udpClient6.String() + "/64", "dev", "eth0", "nodad"},
			{"ip", "link", "set", "eth0", "up"},
			{"ip", "route", "add", "default", "via", "192.168.77.1"},
			{"ip", "-6", "route", "add", "default", "via", "fd77::1"},
		},
		r.peer: {
			{"sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"},
			{"ip", "addr", "add", udpPeer4 + "/24", "dev", "eth0"},
			{"ip", "addr", "add", "fd78::2/64", "dev", "eth0", "nodad"},
			{"ip", "addr", "add", udpOut4.String() + "/24", "dev", "eth1"},
			{"ip", "addr", "add", udpOut6.String() + "/64", "dev", "eth1", "nodad"},
			{"ip", "link", "set", "eth0", "up"},
			{"ip", "link", "set", "eth1", "up"},
			{"ip", "route", "add", udpServer4.Addr().String(), "via", "10.78.0.2"},
			{"ip", "-6", "route", "add", udpServer6.Addr().String(), "via", "fd79::2"},
			// The LAN is reachable from the peer: a datagram that goes
			// direct (not relayed) is answered too, to its LAN source.
			{"ip", "route", "add", "192.168.77.0/24", "via", "10.77.0.1"},
			{"ip", "-6", "route", "add", "fd77::/64", "via", "fd78::1"},
		},
		r.inet: {
			{"ip", "addr", "add", "10.78.0.2/24", "dev", "eth0"},
			{"ip", "addr", "add", "fd79::2/64", "dev", "eth0", "nodad"},
			{"ip", "addr", "add", udpServer4.Addr().String() + "/32", "dev", "lo"},
			{"ip", "addr", "add", udpServer6.Addr().String() + "/128", "dev", "lo"},
			{"ip", "link", "set", "eth0", "up"},
			{"ip", "route", "add", "default", "via", udpOut4.String()},
			{"ip", "-6", "route", "add", "default", "via", udpOut6.String()},
		},
	} {
		for _, c := range cmds {
			nstest.In(t, ns, c[0], c[1:]...)
		}
	}
	// compile's rules for udp: peer (compile/proxyudp.go), reduced to
	// what this topology needs.
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(`table inet braid {
	chain prerouting_tproxy {
		type filter hook prerouting priority mangle + 1; policy accept;
		iifname != "lan0" return
		fib daddr type local return
		ip daddr 10.77.0.2 return
		meta l4proto udp fib daddr type != unicast return
		iifname "lan0" meta l4proto udp tproxy ip to :7190 meta mark set 0x00001c16
		iifname "lan0" meta l4proto udp tproxy ip6 to :7190 meta mark set 0x00001c16
	}
}
`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}

	// The servers: each answers a datagram with the address it came
	// from; the "other" server, on another port, answers the same
	// address too, unasked: the relay must not pass that on.
	r.server4 = udpServer4
	r.other = netip.AddrPortFrom(udpServer4.Addr(), udpServer4.Port()+1)
	var conns []*net.UDPConn
	nstest.Do(t, r.inet, func() error {
		for _, ap := range []netip.AddrPort{udpServer4, udpServer6, r.other} {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	other := conns[2]
	for _, c := range conns[:2] {
		nstest.ServeUDP(t, c, func(payload []byte, from netip.AddrPort) {
			if string(payload) == "unasked" {
				// First, from the other port: dropped by the relay;
				// then the answer the client waits for.
				other.WriteToUDPAddrPort([]byte("from elsewhere"), from)
			}
			c.WriteToUDPAddrPort([]byte(from.String()), from)
		})
	}
	t.Cleanup(func() { other.Close() })
	for cipher, port := range r.ports {
		ss := exec.Command("ip", "netns", "exec", r.peer, "ss-server", "-u", "-s", udpPeer4, "-p", strconv.Itoa(port), "-k", udpPassword, "-m", cipher)
		if err := ss.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ss.Process.Kill(); ss.Wait() })
	}
	return r
}

// config is the session's configuration for the peer's ss-server with
// cipher.
func (r *udpRig) config(cipher, udp string) Config {
	return Config{Port: Port, Peer: net.JoinHostPort(udpPeer4, strconv.Itoa(r.ports[cipher])), Cipher: cipher,
		Key: &api.Secret{Value: udpPassword}, TCP: api.TCPDirect, UDP: udp}
}

// start runs the proxy session with cfg until the test ends.
func (r *udpRig) start(p *Proxy, cfg Config) {
	r.p = p
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.done = make(chan error, 1)
	r.states = make(chan string, 16)
	env := session.NewEnv("proxy/aggregation", nstest.Logger(r.t), nil, func(_ session.State, d string) {
		select {
		case r.states <- d:
		default:
		}
	})
	go func() { r.done <- p.Run(r.ctx, cfg, env) }()
	r.t.Cleanup(r.stop)
	r.running("udp")
}

// running waits for the session's status to say it listens for what.
func (r *udpRig) running(what string) {
	r.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case d := <-r.states:
			if strings.Contains(d, "("+what+")") {
				return
			}
		case err := <-r.done:
			r.t.Fatalf("Run: %v", err)
		case <-timeout:
			r.t.Fatalf("the session does not say it listens for %s", what)
		}
	}
}

func (r *udpRig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		r.t.Errorf("Run: %v", err)
	}
}

// ask sends msg from the LAN client's port (0: any) to server on a
// connected socket (which takes datagrams from server only) and returns
// the first answer; it asks again until one comes, for ss-server may
// still be starting.
func (r *udpRig) ask(server netip.AddrPort, port int, msg string) (string, error) {
	var answer string
	var last error
	nstest.Do(r.t, r.client, func() error {
		var laddr *net.UDPAddr
		if port != 0 {
			laddr = &net.UDPAddr{Port: port}
		}
		c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(server))
		if err != nil {
			last = err
			return nil
		}
		defer c.Close()
		buf := make([]byte, 2048)
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
			if _, err := c.Write([]byte(msg)); err != nil {
				last = err
				time.Sleep(100 * time.Millisecond)
				continue
			}
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, err := c.Read(buf)
			if err == nil {
				answer, last = string(buf[:n]), nil
				return nil
			}
			last = err
		}
		return nil
	})
	return answer, last
}

// hasAssociation reports whether the running relay holds src's.
func (r *udpRig) hasAssociation(src netip.AddrPort) bool {
	r.p.mu.Lock()
	u := r.p.udp
	r.p.mu.Unlock()
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.assocs[src] != nil
}

// associations is how many the running relay holds.
func (r *udpRig) associations() int {
	r.p.mu.Lock()
	u := r.p.udp
	r.p.mu.Unlock()
	if u == nil {
		return -1
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.assocs)
}

// TestUDPRelay: LAN UDP steered by tproxy reaches a server beyond the
// peer (shadowsocks-libev's ss-server -u) in both families, relayed (the
// server sees the peer's address), and the client's connected socket
// takes the answer (so it came from the server's address and port);
// what the server's other port sends the client unasked is not passed
// on; associations end when idle, and stay within their bound; a new
// cipher applies in place; udp: direct stops the relay, and the tproxy
// rules left in place let LAN UDP through to plain routing.
func TestUDPRelay(t *testing.T) {
	if !inBox(t) {
		return
	}
	r := newUDPRig(t)
	p := &Proxy{UDPIdle: 5 * time.Second, UDPAssociations: 2}
	r.start(p, r.config("chacha20-ietf-poly1305", api.UDPPeer))

	relayed := func(server netip.AddrPort, port int, what string) {
		t.Helper()
		want := udpOut4
		if server.Addr().Is6() {
			want = udpOut6
		}
		got, err := r.ask(server, port, what)
		ap, perr := netip.ParseAddrPort(got)
		if err != nil || perr != nil || ap.Addr() != want {
			t.Errorf("%s: LAN to %s: the server saw %q (%v), want the peer's %s", what, server, got, err, want)
		}
	}
	relayed(udpServer4, 0, "IPv4")
	relayed(udpServer6, 0, "IPv6")

	// The socket itself, asked for directly (not steered): nothing to
	// relay, no association. The LAN socket reads in order: once the
	// next datagram is answered, the first has been read.
	self := netip.AddrPortFrom(udpClient4, 40100)
	nstest.Do(t, r.client, func() error {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(self), &net.UDPAddr{IP: net.ParseIP("192.168.77.1"), Port: Port})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("to the socket itself"))
		return err
	})
	relayed(udpServer4, 40101, "after a datagram to the socket itself")
	if r.hasAssociation(self) {
		t.Errorf("a datagram to the relay's own socket opened an association")
	}

	// Broadcast and multicast stay on the LAN (a DHCP discover, SSDP,
	// mDNS): not steered, no association (each family's LAN socket
	// reads in order, as above). The box delivers a broadcast to its
	// own sockets, so without the steering's exclusion the relay would
	// take it.
	for _, c := range []struct {
		group *net.UDPAddr
		src   netip.AddrPort
		then  netip.AddrPort
	}{
		{&net.UDPAddr{IP: net.IPv4bcast, Port: 6767}, netip.AddrPortFrom(udpClient4, 40110), udpServer4},
		{&net.UDPAddr{IP: net.ParseIP("192.168.77.255"), Port: 6767}, netip.AddrPortFrom(udpClient4, 40111), udpServer4},
		{&net.UDPAddr{IP: net.ParseIP("239.255.255.250"), Port: 1900}, netip.AddrPortFrom(udpClient4, 40112), udpServer4},
		{&net.UDPAddr{IP: net.ParseIP("ff02::fb"), Port: 5353, Zone: "eth0"}, netip.AddrPortFrom(udpClient6, 40113), udpServer6},
	} {
		nstest.Do(t, r.client, func() error {
			conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(c.src))
			if err != nil {
				return err
			}
			defer conn.Close()
			rc, err := conn.SyscallConn()
			if err != nil {
				return err
			}
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1) }); err != nil || serr != nil {
				return errors.Join(err, serr)
			}
			_, err = conn.WriteToUDP([]byte("to a group"), c.group)
			return err
		})
		relayed(c.then, 40103, "after a datagram to "+c.group.String())
		if r.hasAssociation(c.src) {
			t.Errorf("a datagram to %s opened an association", c.group)
		}
	}
	// An unconnected socket takes datagrams from anyone: the first that
	// comes is the server's answer, not the other port's.
	nstest.Do(t, r.client, func() error {
		c, err := net.ListenUDP("udp", nil)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.WriteToUDPAddrPort([]byte("unasked"), udpServer4); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 2048)
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil || netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != udpServer4 {
			t.Errorf("the other port's datagram, unasked: the client got %q from %s (%v), want the server's answer first", buf[:n], from, err)
		}
		return nil
	})

	// Three LAN sources, a bound of two: the third still gets through.
	for _, port := range []int{40001, 40002, 40003} {
		relayed(udpServer4, port, "source port "+strconv.Itoa(port))
	}
	if n := r.associations(); n > 2 {
		t.Errorf("%d associations, bound 2", n)
	}
	// Idle associations end.
	for deadline := time.Now().Add(30 * time.Second); r.associations() != 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if n := r.associations(); n != 0 {
		t.Errorf("%d associations after their idle timeout", n)
	}

	// Another cipher (another ss-server), in place.
	if err := p.Update(r.config("aes-128-gcm", api.UDPPeer)); err != nil {
		t.Fatalf("Update: %v", err)
	}
	relayed(udpServer4, 0, "aes-128-gcm, IPv4")
	relayed(udpServer6, 0, "aes-128-gcm, IPv6")

	// udp: direct: the relay's sockets close, tproxy finds none, and the
	// datagrams are routed as they are (the server sees the client).
	if err := p.Update(r.config("aes-128-gcm", api.UDPDirect)); err != nil {
		t.Fatalf("Update: %v", err)
	}
	for _, c := range []struct {
		server netip.AddrPort
		client netip.Addr
	}{{udpServer4, udpClient4}, {udpServer6, udpClient6}} {
		got, err := r.ask(c.server, 0, "direct")
		if ap, perr := netip.ParseAddrPort(got); err != nil || perr != nil || ap.Addr() != c.client {
			t.Errorf("udp: direct: LAN to %s: the server saw %q (%v), want the client %s", c.server, got, err, c.client)
		}
	}
	// And back.
	if err := p.Update(r.config("aes-128-gcm", api.UDPPeer)); err != nil {
		t.Fatalf("Update: %v", err)
	}
	relayed(udpServer4, 0, "peer again")
	if err := p.Update(Config{Port: Port + 1}); !errors.Is(err, session.ErrRestart) {
		t.Errorf("another port: %v, want a restart", err)
	}
}
