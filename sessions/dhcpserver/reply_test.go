package dhcpserver

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/braid-router/braid/sessions/dhcpserver/leases"
)

func newTable(t testing.TB) *leases.Table {
	t.Helper()
	tab, err := leases.New(testCfg.leases(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func message(t testing.TB, typ dhcpv4.MessageType, mac string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	hw, _ := net.ParseMAC(mac)
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(typ), dhcpv4.WithHwAddr(hw)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestHandle checks where replies go (RFC 2131 4.1) and what the server
// does with what udhcpc does not send: INFORM, DECLINE, a NAK, relayed
// messages.
func TestHandle(t *testing.T) {
	now := time.Now()
	tab := newTable(t)
	ip := net.ParseIP

	offer := handle(testCfg, tab, message(t, dhcpv4.MessageTypeDiscover, dynamicMAC), now)
	if offer.reply == nil || offer.reply.MessageType() != dhcpv4.MessageTypeOffer || offer.to != broadcast {
		t.Fatalf("DISCOVER: %+v, want an OFFER broadcast", offer)
	}
	if got := offer.reply.YourIPAddr.String(); got != "192.168.77.100" {
		t.Errorf("offered %s", got)
	}
	// The client declines it (in use): the next offer is another address.
	handle(testCfg, tab, message(t, dhcpv4.MessageTypeDecline, dynamicMAC,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip("192.168.77.100")))), now)
	offer = handle(testCfg, tab, message(t, dhcpv4.MessageTypeDiscover, dynamicMAC), now)
	if got := offer.reply.YourIPAddr.String(); got != "192.168.77.101" {
		t.Errorf("after a DECLINE, offered %s, want 192.168.77.101", got)
	}
	// A REQUEST in INIT-REBOOT for an address of another network: NAK,
	// broadcast, with the server identifier.
	nak := handle(testCfg, tab, message(t, dhcpv4.MessageTypeRequest, dynamicMAC,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip("10.0.0.5")))), now)
	if nak.reply == nil || nak.reply.MessageType() != dhcpv4.MessageTypeNak || nak.to != broadcast ||
		!nak.reply.ServerIdentifier().Equal(ip("192.168.77.1")) {
		t.Errorf("INIT-REBOOT on another network: %+v, want a NAK broadcast", nak)
	}
	// A renewal goes to ciaddr.
	ack := handle(testCfg, tab, message(t, dhcpv4.MessageTypeRequest, dynamicMAC,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip("192.168.77.1"))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip("192.168.77.101")))), now)
	if ack.reply == nil || ack.reply.MessageType() != dhcpv4.MessageTypeAck || !ack.changed {
		t.Fatalf("REQUEST: %+v, want an ACK", ack)
	}
	renew := handle(testCfg, tab, message(t, dhcpv4.MessageTypeRequest, dynamicMAC, dhcpv4.WithClientIP(ip("192.168.77.101"))), now)
	if renew.reply == nil || renew.reply.MessageType() != dhcpv4.MessageTypeAck || renew.to != netip.MustParseAddrPort("192.168.77.101:68") {
		t.Errorf("RENEWING: %+v, want an ACK to 192.168.77.101:68", renew)
	}
	// INFORM: the configuration, no address, no lease time, to ciaddr.
	inform := handle(testCfg, tab, message(t, dhcpv4.MessageTypeInform, "02:00:00:00:77:99", dhcpv4.WithClientIP(ip("192.168.77.20"))), now)
	if inform.reply == nil || inform.reply.MessageType() != dhcpv4.MessageTypeAck || !inform.reply.YourIPAddr.IsUnspecified() ||
		inform.reply.IPAddressLeaseTime(0) != 0 || len(inform.reply.Router()) != 1 || inform.to != netip.MustParseAddrPort("192.168.77.20:68") {
		t.Errorf("INFORM: %+v", inform)
	}
	// Relayed: not served.
	if relayed := handle(testCfg, tab, message(t, dhcpv4.MessageTypeDiscover, "02:00:00:00:77:98", dhcpv4.WithGatewayIP(ip("10.1.1.1"))), now); relayed.reply != nil {
		t.Errorf("a relayed DISCOVER was answered")
	}
}

// FuzzHandle: whatever arrives on the LAN, the server neither panics nor
// leases an address outside what it serves.
func FuzzHandle(f *testing.F) {
	hw, _ := net.ParseMAC(dynamicMAC)
	d, _ := dhcpv4.NewDiscovery(hw)
	f.Add(d.ToBytes())
	r, _ := dhcpv4.NewRequestFromOffer(d)
	f.Add(r.ToBytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		tab := newTable(t)
		ans := handle(testCfg, tab, m, time.Now())
		for _, l := range tab.Leases() {
			if s := l.Addr; !testCfg.Subnet.Contains(s) || s == testCfg.Server {
				t.Fatalf("leased %s", s)
			}
		}
		if ans.reply != nil {
			if _, err := dhcpv4.FromBytes(ans.reply.ToBytes()); err != nil {
				t.Fatalf("a reply that does not decode: %v", err)
			}
		}
	})
}

func TestHostname(t *testing.T) {
	for in, want := range map[string]string{
		"laptop":                 "laptop",
		"pc.home":                "pc.home",
		"\x1b[31mred\x1b[0m":     "31mred0m",
		"a b\nc":                 "abc",
		strings.Repeat("x", 100): strings.Repeat("x", maxHostname),
	} {
		if got := hostname(in); got != want {
			t.Errorf("hostname(%q) = %q, want %q", in, got, want)
		}
	}
}
