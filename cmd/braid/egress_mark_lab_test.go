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
// other tables alone) that counts, by uplink, the packets the LAN sends to
// the download service of the Internet server: which uplink a flow's
// packets leave by.
const egressCounters = `table inet egresstest {
	chain post {
		type filter hook postrouting priority 0; policy accept;
		oifname "wan1" ip daddr ` + lab.ServerV4 + ` tcp dport 9001 counter comment "wan1"
		oifname "wan2" ip daddr ` + lab.ServerV4 + ` tcp dport 9001 counter comment "wan2"
	}
}
`

// flowPackets reads the counters of egressCounters: the packets of the
// download flow that left by wan1 and by wan2.
func (b *labBox) flowPackets() (wan1, wan2 uint64) {
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
			case "wan1":
				wan1 = e.Counter.Packets
			case "wan2":
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

// steerServer puts the Internet server's IPv4 address into isp2's egress
// set for timeout, as the DNS forwarder does for an answer.
func steerServer(t *testing.T, e *nftables.Elements, timeout time.Duration) {
	t.Helper()
	err := e.Add(context.Background(), []nftables.TimedElement{
		{Set: "egress_isp2_v4", Addr: netip.MustParseAddr(lab.ServerV4), Timeout: timeout},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitExpired waits until the server's element has left isp2's egress set.
func (b *labBox) waitExpired() {
	b.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var doc struct {
			Nftables []struct {
				Set *struct {
					Elem []json.RawMessage `json:"elem"`
				} `json:"set"`
			} `json:"nftables"`
		}
		if err := json.Unmarshal([]byte(b.run(lab.RoleBox, "nft", "-j", "list", "set", "inet", "braid", "egress_isp2_v4")), &doc); err != nil {
			b.t.Fatal(err)
		}
		if !slices.ContainsFunc(doc.Nftables, func(o struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		}) bool {
			return o.Set != nil && len(o.Set.Elem) > 0
		}) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatal("the server's element did not expire from egress_isp2_v4")
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

func (b *labBox) download() *downloadFlow {
	b.t.Helper()
	var c net.Conn
	err := b.l.Do(lab.RoleLAN, func() (err error) {
		c, err = net.DialTimeout("tcp", net.JoinHostPort(lab.ServerV4, strconv.Itoa(lab.DownloadPort)), 10*time.Second)
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

// TestEgressFlowKeepsItsUplink: a connection that began while its
// destination was in isp2's egress set keeps leaving by isp2 after the
// element expired (its conntrack mark is restored on each packet), while
// a new connection to the same address follows the main table (isp1).
// Withdrawn as health does it (no fwmark policy rule for isp2's mark),
// the flow's packets follow the main table, out of isp1: never a black
// hole.
func TestEgressFlowKeepsItsUplink(t *testing.T) {
	b := newLabBox(t)
	b.braidOK("apply", "-f", "../../specs/lab.yaml")
	nstest.NftLoad(t, b.l.NS(lab.RoleBox), egressCounters)
	e := b.egressWriter()

	// The element lasts until the flow has begun: the test sets its end.
	steerServer(t, e, time.Hour)
	if got := b.whoami(lab.RoleLAN, "tcp", net.JoinHostPort(lab.ServerV4, strconv.Itoa(lab.WhoamiPort))); got != lab.BoxWAN2V4 {
		t.Fatalf("with the server in egress_isp2_v4 a new connection left by %s, want isp2 (%s)", got, lab.BoxWAN2V4)
	}
	f := b.download()
	f.read(256 << 10)
	if wan1, wan2 := b.flowPackets(); wan1 != 0 || wan2 == 0 {
		t.Fatalf("the flow's packets before expiry: %d by wan1, %d by wan2; want all by wan2", wan1, wan2)
	}

	// Renewed with a short timeout, the element expires.
	steerServer(t, e, time.Second)
	b.waitExpired()
	if got := b.whoami(lab.RoleLAN, "tcp", net.JoinHostPort(lab.ServerV4, strconv.Itoa(lab.WhoamiPort))); got != lab.BoxWAN1V4 {
		t.Fatalf("after the element expired a new connection left by %s, want isp1 (%s)", got, lab.BoxWAN1V4)
	}
	wan1, wan2 := b.flowPackets()
	f.read(1 << 20)
	wan1After, wan2After := b.flowPackets()
	if wan1After != wan1 || wan2After-wan2 < 10 {
		t.Errorf("after the element expired the flow sent %d packets by wan1 and %d by wan2; want them all by wan2", wan1After-wan1, wan2After-wan2)
	}

	// isp2 withdrawn: its fwmark rules go (TestCompileHealthWithdraws),
	// its restore rule stays.
	for _, family := range []string{"-4", "-6"} {
		b.run(lab.RoleBox, "ip", family, "rule", "del", "pref", "7050", "fwmark", "0x1bbe")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		f.c.SetReadDeadline(time.Now().Add(time.Second))
		io.CopyN(io.Discard, f.c, 64<<10) // it may stall: isp1 carries isp2's NAT address
		if now, _ := b.flowPackets(); now > wan1After {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("with isp2 withdrawn, the flow's packets did not leave by wan1")
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
	steerServer(t, e, time.Hour)
	if got := b.whoami(lab.RoleLAN, "tcp", whoami); got != lab.BoxWAN2V4 {
		t.Fatalf("with the server in egress_isp2_v4 the server saw the LAN from %s, want isp2's %s (direct, not the peer)", got, lab.BoxWAN2V4)
	}
	f := b.download()
	f.read(256 << 10)
	if wan1, wan2 := b.flowPackets(); wan1 != 0 || wan2 == 0 {
		t.Fatalf("the flow's packets before expiry: %d by wan1, %d by wan2; want all by wan2", wan1, wan2)
	}
	steerServer(t, e, time.Second)
	b.waitExpired()
	wan1, wan2 := b.flowPackets()
	f.read(1 << 20)
	if wan1After, wan2After := b.flowPackets(); wan1After != wan1 || wan2After-wan2 < 10 {
		t.Errorf("after the element expired the flow sent %d packets by wan1 and %d by wan2; want them all by wan2", wan1After-wan1, wan2After-wan2)
	}
	if got := seenFrom(lab.PeerV4); got != lab.PeerV4 {
		t.Errorf("after the element expired a new connection was seen from %s, want the peer's %s", got, lab.PeerV4)
	}
}
