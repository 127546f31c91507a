package main

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
)

// TestProxyPeerWithoutIPv6: braid's peer loses its IPv6 default route,
// so that it fails every IPv6 dial and closes those requests without a
// byte: after a few LAN IPv6 connections reset, the box judges that the
// peer relays no IPv6 and LAN IPv6 goes direct (the server sees the LAN
// client's own address), while IPv4 still goes through the peer.
func TestProxyPeerWithoutIPv6(t *testing.T) {
	l := labtest.New(t)
	b := labBoxOf(t, l)
	const port = 8390
	const cipher = "aes-256-gcm"
	braidPeerDaemon(t, nsBox(t, l.NS(lab.RolePeer)), port, cipher, ssPassword)
	d := b.startDaemon("-f", writeSpec(t, aggregationSpec(t, port, cipher, ssPassword)))
	steeredLAN(t, l, d, "the proxy running and its steering in place")
	v4 := net.JoinHostPort(lab.ServerV4, strconv.Itoa(lab.WhoamiPort))
	v6 := net.JoinHostPort(lab.ServerV6, strconv.Itoa(lab.WhoamiPort))
	// seenFrom waits until the server sees the LAN's connections to dst
	// come from want.
	seenFrom := func(dst, want, what string) {
		t.Helper()
		var got string
		var err error
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if got, err = ask(l, lab.RoleLAN, dst); err == nil {
				if ap, perr := netip.ParseAddrPort(got); perr == nil && ap.Addr().String() == want {
					return
				}
			}
		}
		t.Fatalf("%s: LAN to %s: the server saw %q (%v), want %s", what, dst, got, err, want)
	}
	seenFrom(v6, lab.PeerV6, "IPv6 through the peer")

	if out, err := l.Run(context.Background(), lab.RolePeer, "ip", "-6", "route", "del", "default"); err != nil {
		t.Fatalf("removing the peer's IPv6 default route: %v %s", err, out)
	}
	// The first connections are reset (the peer cannot dial); then LAN
	// IPv6 goes direct.
	seenFrom(v6, lab.LANClientV6, "the peer without IPv6")
	seenFrom(v4, lab.PeerV4, "IPv4 through the peer without IPv6")
}
