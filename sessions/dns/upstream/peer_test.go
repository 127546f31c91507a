package upstream

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/braid-router/braid/internal/nstest"
)

// Addresses of the peer's rig: the box reaches the peer (and nothing
// beyond it); the peer reaches the resolver's namespace, where dnsmasq
// serves on peerResolver.
const (
	peerAddr     = "10.81.0.2"
	peerOut      = "10.82.0.1" // the peer's address towards the resolver
	peerResolver = "10.82.0.2"
	peerPassword = "dns-not-a-secret"
	peerCipher   = "chacha20-ietf-poly1305"
)

// TestPoolThroughPeer: the peer upstream asks the resolver by DNS over
// TCP inside the shadowsocks stream, over Multipath TCP, through a real
// shadowsocks-libev ss-server and through braid's own peer: the answers
// come back (many queries at once, pipelined on one connection, and a
// large answer whole), and the resolver's log shows the queries from
// the peer's address, the box having no route to it.
func TestPoolThroughPeer(t *testing.T) {
	if !inBox(t, "dnsmasq", "ss-server") {
		return
	}
	pns := nstest.New(t)
	res := nstest.New(t)
	veth(t, "p0", "10.81.0.1/24", pns, "p1", peerAddr+"/24")
	nstest.Run(t, "ip", "link", "add", "r0", "netns", pns, "type", "veth", "peer", "name", "r1", "netns", res)
	nstest.Run(t, "ip", "-n", pns, "addr", "add", peerOut+"/24", "dev", "r0")
	nstest.Run(t, "ip", "-n", pns, "link", "set", "r0", "up")
	nstest.Run(t, "ip", "-n", res, "addr", "add", peerResolver+"/24", "dev", "r1")
	nstest.Run(t, "ip", "-n", res, "link", "set", "r1", "up")
	logs := dnsmasq(t, res, peerResolver, answerA)

	const ssPort, braidPort = 8388, 8389
	ss := nstest.Watch(t, "ip", "netns", "exec", pns, "ss-server", "--mptcp", "-s", peerAddr, "-p", strconv.Itoa(ssPort), "-k", peerPassword, "-m", peerCipher)
	braid := nstest.Watch(t, "ip", "netns", "exec", pns, "env", peerEnv+"="+peerAddr+":"+strconv.Itoa(braidPort)+" "+peerCipher+" "+peerPassword, os.Args[0])
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ss-server:\n%s\nbraid's peer:\n%s", ss.String(), braid.String())
		}
	})
	for _, port := range []int{ssPort, braidPort} {
		waitFor(t, "the peer listening on port "+strconv.Itoa(port), func() bool {
			c, err := net.Dial("tcp", net.JoinHostPort(peerAddr, strconv.Itoa(port)))
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	// The peer's namespace has a resolver of its own, as an uplink's
	// would be: the fallback.
	dnsmasq(t, pns, peerAddr, answerF)
	if _, err := net.Dial("udp", net.JoinHostPort(peerResolver, "53")); err == nil {
		// A connected UDP socket needs a route: there must be none.
		t.Fatal("the box has a route to the resolver: the test would prove nothing")
	}

	for _, tc := range []struct {
		name string
		port int
	}{{"ss-server", ssPort}, {"braid", braidPort}} {
		t.Run(tc.name, func(t *testing.T) {
			dial, err := NewPeerDialer(net.JoinHostPort(peerAddr, strconv.Itoa(tc.port)), peerCipher, peerPassword)
			if err != nil {
				t.Fatal(err)
			}
			p := New(Config{
				Upstreams: []Resolver{{Name: "peer", Addr: netip.MustParseAddrPort(peerResolver + ":53"), Peer: true}},
				Dial:      dial,
				Timeout:   tryTimeout,
				Log:       nstest.Logger(t),
			})
			defer p.Close()
			before := strings.Count(logs.String(), "from "+peerOut)
			var wg sync.WaitGroup
			const n = 20
			answers := make([][]string, n)
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					r, err := askMsg(p, "who.test.")
					if err == nil {
						answers[i] = addrs(r)
					}
					errs[i] = err
				})
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil || !slices.Equal(answers[i], []string{answerA}) {
					t.Fatalf("query %d through the peer: %v, %v; want %s", i, answers[i], errs[i], answerA)
				}
			}
			if got := ask(t, p, "big.test."); len(got) != bigCount {
				t.Errorf("big.test through the peer = %d addresses, want %d", len(got), bigCount)
			}
			// dnsmasq writes its log after it answers: wait for it.
			waitFor(t, "the resolver's log of the queries from the peer's address", func() bool {
				return strings.Count(logs.String(), "from "+peerOut) >= before+n+1
			})
			// The connection to the peer is Multipath TCP, and one.
			out := nstest.Run(t, "ss", "-MnH", "state", "established", "dst", net.JoinHostPort(peerAddr, strconv.Itoa(tc.port)))
			if lines := strings.Count(strings.TrimSpace(out), "\n") + 1; strings.TrimSpace(out) == "" || lines != 1 {
				t.Errorf("Multipath TCP connections to the peer: %q, want one", out)
			}
			if s := state(t, p, "peer"); !s.Up || !s.InUse || !s.Peer {
				t.Errorf("the peer upstream: %+v", s)
			}
		})
	}

	// Another key: braid's peer gives nothing back; the peer upstream is
	// dead, and the fallback answers.
	t.Run("another key", func(t *testing.T) {
		dial, err := NewPeerDialer(net.JoinHostPort(peerAddr, strconv.Itoa(braidPort)), peerCipher, "another-"+peerPassword)
		if err != nil {
			t.Fatal(err)
		}
		p := New(Config{
			Upstreams: []Resolver{{Name: "peer", Addr: netip.MustParseAddrPort(peerResolver + ":53"), Peer: true}},
			Fallback:  []Resolver{{Name: "uplink:isp", Addr: netip.MustParseAddrPort(peerAddr + ":53"), Uplink: "isp"}},
			Dial:      dial,
			Timeout:   tryTimeout,
			Log:       nstest.Logger(t),
		})
		defer p.Close()
		if got := ask(t, p, "who.test."); !slices.Equal(got, []string{answerF}) {
			t.Fatalf("who.test with the peer refusing the key = %v, want the fallback's %s", got, answerF)
		}
		if s := state(t, p, "peer"); s.Up || !strings.Contains(s.Err, "timed out") {
			t.Errorf("the peer upstream with another key: %+v", s)
		}
		if !p.FallbackInUse() {
			t.Error("the fallback not said in use")
		}
	})
}
