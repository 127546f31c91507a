package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
)

// egressCounters is a table of the test's own in the box (braid leaves
// other tables alone) that counts, by uplink and family, the packets the
// LAN sends to the download service of the Internet server: which uplink
// a flow's packets leave by.
const egressCounters = `table inet egresstest {
	chain post {
		type filter hook postrouting priority 0; policy accept;
		oifname "wan1" ip daddr ` + lab.ServerV4 + ` tcp dport 9001 counter comment "wan1-v4"
		oifname "wan2" ip daddr ` + lab.ServerV4 + ` tcp dport 9001 counter comment "wan2-v4"
		oifname "wan1" ip6 daddr ` + lab.ServerV6 + ` tcp dport 9001 counter comment "wan1-v6"
		oifname "wan2" ip6 daddr ` + lab.ServerV6 + ` tcp dport 9001 counter comment "wan2-v6"
	}
}
`

// egressFamily is what the egress tests use of one address family.
type egressFamily struct {
	name   string // "v4", "v6"
	set    string // isp2's egress set
	server string // the Internet server's address
}

var egressFamilies = []egressFamily{
	{name: "v4", set: "egress_isp2_v4", server: lab.ServerV4},
	{name: "v6", set: "egress_isp2_v6", server: lab.ServerV6},
}

// flowPackets reads the counters of egressCounters: the packets of a
// family's download flow that left by wan1 and by wan2.
func (b *labBox) flowPackets(fam egressFamily) (wan1, wan2 uint64) {
	b.t.Helper()
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Comment string `json:"comment"`
				Expr    []struct {
					Counter *struct {
						Packets uint64 `json:"packets"`
					} `json:"counter"`
				} `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(b.run(lab.RoleBox, "nft", "-j", "list", "chain", "inet", "egresstest", "post")), &doc); err != nil {
		b.t.Fatal(err)
	}
	for _, o := range doc.Nftables {
		if o.Rule == nil {
			continue
		}
		for _, e := range o.Rule.Expr {
			if e.Counter == nil {
				continue
			}
			switch o.Rule.Comment {
			case "wan1-" + fam.name:
				wan1 = e.Counter.Packets
			case "wan2-" + fam.name:
				wan2 = e.Counter.Packets
			}
		}
	}
	return wan1, wan2
}

// egressWriter opens the DNS forwarder's element writer in the box.
func (b *labBox) egressWriter() *nftables.Elements {
	b.t.Helper()
	var e *nftables.Elements
	if err := b.l.Do(lab.RoleBox, func() (err error) { e, err = nftables.OpenElements(); return err }); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { e.Close() })
	return e
}

// steerServer puts the Internet server's address into isp2's egress set
// of its family for timeout, as the DNS forwarder does for an answer.
func steerServer(t *testing.T, e *nftables.Elements, fam egressFamily, timeout time.Duration) {
	t.Helper()
	err := e.Add(context.Background(), []nftables.TimedElement{
		{Set: fam.set, Addr: netip.MustParseAddr(fam.server), Timeout: timeout},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitExpired waits until isp2's egress set of a family is empty.
func (b *labBox) waitExpired(fam egressFamily) {
	b.t.Helper()
	type set struct {
		Set *struct {
			Elem []json.RawMessage `json:"elem"`
		} `json:"set"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var doc struct{ Nftables []set }
		if err := json.Unmarshal([]byte(b.run(lab.RoleBox, "nft", "-j", "list", "set", "inet", "braid", fam.set)), &doc); err != nil {
			b.t.Fatal(err)
		}
		if !slices.ContainsFunc(doc.Nftables, func(o set) bool { return o.Set != nil && len(o.Set.Elem) > 0 }) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the server's element did not expire from %s", fam.set)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// downloadFlow is a LAN client's connection to the Internet server's
// download service, read from in steps.
type downloadFlow struct {
	t *testing.T
	c net.Conn
}

func (b *labBox) download(fam egressFamily) *downloadFlow {
	b.t.Helper()
	var c net.Conn
	err := b.l.Do(lab.RoleLAN, func() (err error) {
		c, err = net.DialTimeout("tcp", net.JoinHostPort(fam.server, strconv.Itoa(lab.DownloadPort)), 10*time.Second)
		return err
	})
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { c.Close() })
	return &downloadFlow{t: b.t, c: c}
}

// read reads n bytes of the download, within a generous deadline.
func (f *downloadFlow) read(n int64) {
	f.t.Helper()
	f.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if got, err := io.CopyN(io.Discard, f.c, n); err != nil {
		f.t.Fatalf("the download stopped after %d of %d bytes: %v", got, n, err)
	}
}

// readOn reads the download until its packets have left the box at least
// ten times by wan2, or once by wan1, and returns how many left by each
// meanwhile. The client's receive buffer may hold much of what the read
// asks for already: how much to read for ten packets is not known.
func (b *labBox) readOn(f *downloadFlow, fam egressFamily) (wan1, wan2 uint64) {
	b.t.Helper()
	wan1Before, wan2Before := b.flowPackets(fam)
	for deadline := time.Now().Add(60 * time.Second); ; {
		f.read(256 << 10)
		w1, w2 := b.flowPackets(fam)
		wan1, wan2 = w1-wan1Before, w2-wan2Before
		if wan1 > 0 || wan2 >= 10 || time.Now().After(deadline) {
			return wan1, wan2
		}
	}
}

// TestEgressFlowKeepsItsUplink: a connection that began while its
// destination was in isp2's egress set keeps leaving by isp2 after the
// element expired (its conntrack mark is restored on each packet), while
// a new connection to the same address follows the main table (isp1),
// in both families. Withdrawn as health does it (no fwmark policy rule
// for isp2's mark), the flow's packets follow the main table, out of
// isp1: never a black hole.
func TestEgressFlowKeepsItsUplink(t *testing.T) {
	b := newLabBox(t)
	b.braidOK("apply", "-f", "../../specs/lab.yaml")
	nstest.NftLoad(t, b.l.NS(lab.RoleBox), egressCounters)
	e := b.egressWriter()

	flows := map[string]*downloadFlow{}
	for _, fam := range egressFamilies {
		whoami := net.JoinHostPort(fam.server, strconv.Itoa(lab.WhoamiPort))
		// The element lasts until the flow has begun: the test sets its
		// end.
		steerServer(t, e, fam, time.Hour)
		if fam.name == "v4" {
			// IPv6 is not NATed: the counters tell its path.
			if got := b.whoami(lab.RoleLAN, "tcp", whoami); got != lab.BoxWAN2V4 {
				t.Fatalf("with the server in %s a new connection left by %s, want isp2 (%s)", fam.set, got, lab.BoxWAN2V4)
			}
		}
		f := b.download(fam)
		f.read(256 << 10)
		if wan1, wan2 := b.flowPackets(fam); wan1 != 0 || wan2 == 0 {
			t.Fatalf("%s: the flow's packets before expiry: %d by wan1, %d by wan2; want all by wan2", fam.name, wan1, wan2)
		}
		flows[fam.name] = f

		// Renewed with a short timeout, the element expires.
		steerServer(t, e, fam, time.Second)
		b.waitExpired(fam)
		if fam.name == "v4" {
			if got := b.whoami(lab.RoleLAN, "tcp", whoami); got != lab.BoxWAN1V4 {
				t.Fatalf("after the element expired a new connection left by %s, want isp1 (%s)", got, lab.BoxWAN1V4)
			}
		}
		if wan1, wan2 := b.readOn(f, fam); wan1 != 0 || wan2 < 10 {
			t.Errorf("%s: after the element expired the flow sent %d packets by wan1 and %d by wan2; want them all by wan2", fam.name, wan1, wan2)
		}
	}

	// isp2 withdrawn: its fwmark rules go (TestCompileHealthWithdraws),
	// its restore rule stays.
	for _, family := range []string{"-4", "-6"} {
		b.run(lab.RoleBox, "ip", family, "rule", "del", "pref", "7050", "fwmark", "0x1bbe")
	}
	for _, fam := range egressFamilies {
		f := flows[fam.name]
		before, _ := b.flowPackets(fam)
		deadline := time.Now().Add(30 * time.Second)
		for {
			f.c.SetReadDeadline(time.Now().Add(time.Second))
			io.CopyN(io.Discard, f.c, 64<<10) // an IPv4 flow may stall: isp1 carries isp2's NAT address
			if now, _ := b.flowPackets(fam); now > before {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: with isp2 withdrawn, the flow's packets did not leave by wan1", fam.name)
			}
		}
	}
}

// TestEgressSkipsTheProxy: with the aggregation proxy steering the LAN's
// TCP, a connection to an address of an egress set goes direct, out of
// its uplink, and so do its packets after the element expired (their
// restored mark makes the proxy's chain let them by: had it taken them,
// the proxy's listener would have reset the connection); a new
// connection to the address, once expired, goes through the peer again.
// The daemon's passes meanwhile leave the session's element alone.
func TestEgressSkipsTheProxy(t *testing.T) {
	l := labtest.New(t)
	b := &labBox{box: labBoxOf(t, l), l: l}
	const port = 8392
	const cipher = "aes-256-gcm"
	braidPeerDaemon(t, nsBox(t, l.NS(lab.RolePeer)), port, cipher, ssPassword)
	d := b.startDaemon("-f", writeSpec(t, aggregationSpec(t, port, cipher, ssPassword)))
	steeredLAN(t, l, d, "the proxy running and its steering in place")
	whoami := net.JoinHostPort(lab.ServerV4, strconv.Itoa(lab.WhoamiPort))
	seenFrom := func(want string) string {
		var got string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if got = b.whoami(lab.RoleLAN, "tcp", whoami); got == want {
				break
			}
		}
		return got
	}
	if got := seenFrom(lab.PeerV4); got != lab.PeerV4 {
		t.Fatalf("before any egress element the server saw the LAN from %s, want the peer's %s", got, lab.PeerV4)
	}
	nstest.NftLoad(t, l.NS(lab.RoleBox), egressCounters)
	e := b.egressWriter()
	v4 := egressFamilies[0]
	steerServer(t, e, v4, time.Hour)
	if got := b.whoami(lab.RoleLAN, "tcp", whoami); got != lab.BoxWAN2V4 {
		t.Fatalf("with the server in egress_isp2_v4 the server saw the LAN from %s, want isp2's %s (direct, not the peer)", got, lab.BoxWAN2V4)
	}
	f := b.download(v4)
	f.read(256 << 10)
	if wan1, wan2 := b.flowPackets(v4); wan1 != 0 || wan2 == 0 {
		t.Fatalf("the flow's packets before expiry: %d by wan1, %d by wan2; want all by wan2", wan1, wan2)
	}
	steerServer(t, e, v4, time.Second)
	b.waitExpired(v4)
	if wan1, wan2 := b.readOn(f, v4); wan1 != 0 || wan2 < 10 {
		t.Errorf("after the element expired the flow sent %d packets by wan1 and %d by wan2; want them all by wan2", wan1, wan2)
	}
	if got := seenFrom(lab.PeerV4); got != lab.PeerV4 {
		t.Errorf("after the element expired a new connection was seen from %s, want the peer's %s", got, lab.PeerV4)
	}
}
