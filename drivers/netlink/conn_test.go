package netlink

import (
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// rtattr encodes one route attribute.
func rtattr(typ uint16, v []byte) []byte {
	m := msg{}
	m.attr(typ, v)
	return m.b
}

func TestParseRoute(t *testing.T) {
	hdr := []byte{unix.AF_INET6, 48, 0, 0, unix.RT_TABLE_UNSPEC, Protocol, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST, 0, 0, 0, 0}
	b := append([]byte{}, hdr...)
	b = append(b, rtattr(unix.RTA_TABLE, ne.AppendUint32(nil, 7100))...)
	b = append(b, rtattr(unix.RTA_DST, netip.MustParseAddr("2001:db8:1::").AsSlice())...)
	b = append(b, rtattr(unix.RTA_PRIORITY, ne.AppendUint32(nil, 1024))...)
	b = append(b, rtattr(unix.RTA_OIF, ne.AppendUint32(nil, 3))...)
	// A multipath attribute: its first hop's gateway and interface.
	nh := append(ne.AppendUint16(nil, 0), 0, 0)
	nh = ne.AppendUint32(nh, 4)
	nh = append(nh, rtattr(unix.RTA_GATEWAY, netip.MustParseAddr("fe80::1").AsSlice())...)
	ne.PutUint16(nh[0:2], uint16(len(nh)))
	b = append(b, rtattr(unix.RTA_MULTIPATH|unix.NLA_F_NESTED, nh)...)

	r, ok := parseRoute(b)
	want := liveRoute{v6: true, table: 7100, metric: 1024, oif: 4, proto: Protocol, typ: unix.RTN_UNICAST,
		dst: pfx("2001:db8:1::/48"), gw: ip("fe80::1")}
	if !ok || r != want {
		t.Fatalf("parseRoute = %+v, %v\nwant %+v", r, ok, want)
	}

	// A default route has no RTA_DST.
	v4 := []byte{unix.AF_INET, 0, 0, 0, unix.RT_TABLE_MAIN, 4, 0, unix.RTN_UNICAST, 0, 0, 0, 0}
	v4 = append(v4, rtattr(unix.RTA_GATEWAY, []byte{10, 0, 0, 1})...)
	if r, ok := parseRoute(v4); !ok || r.dst != pfx("0.0.0.0/0") || r.table != TableMain || r.gw != ip("10.0.0.1") || r.proto != 4 {
		t.Fatalf("default route: %+v, %v", r, ok)
	}
}

func TestAckError(t *testing.T) {
	ack := ne.AppendUint32(nil, 0)
	ack = append(ack, make([]byte, unix.NLMSG_HDRLEN)...)
	if err := ackError(ack, 0); err != nil {
		t.Fatalf("ack: %v", err)
	}
	errno := -int32(unix.ENETUNREACH)
	e := ne.AppendUint32(nil, uint32(errno))
	e = append(e, make([]byte, unix.NLMSG_HDRLEN)...)
	if err := ackError(e, 0); err != syscall.ENETUNREACH {
		t.Fatalf("plain error: %v", err)
	}
	e = append(e, rtattr(unix.NLMSGERR_ATTR_MSG, []byte("Nexthop has invalid gateway\x00"))...)
	err := ackError(e, unix.NLM_F_ACK_TLVS|unix.NLM_F_CAPPED)
	if !errors.Is(err, unix.ENETUNREACH) || !strings.Contains(err.Error(), "(Nexthop has invalid gateway)") {
		t.Fatalf("extended ack: %v", err)
	}
}

// The decoders never panic on what a socket hands them.
func FuzzParseRoute(f *testing.F) {
	f.Add([]byte{unix.AF_INET, 24, 0, 0, 254, 98, 0, 1, 0, 0, 0, 0, 8, 0, 1, 0, 10, 0, 0, 0})
	f.Add([]byte{unix.AF_INET6, 0, 0, 0, 0, 98, 0, 1, 0, 0, 0, 0, 12, 0, unix.RTA_MULTIPATH, 0, 2, 0, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseRoute(b)
		ackError(b, unix.NLM_F_ACK_TLVS)
		ackError(b, unix.NLM_F_ACK_TLVS|unix.NLM_F_CAPPED)
	})
}
