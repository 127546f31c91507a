package transparent

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cmsg builds one control message as the kernel writes it.
func cmsg(level, typ int, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func sockaddr4(ap netip.AddrPort) []byte {
	b := make([]byte, unix.SizeofSockaddrInet4)
	binary.NativeEndian.PutUint16(b, unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:], ap.Port())
	a := ap.Addr().As4()
	copy(b[4:], a[:])
	return b
}

func sockaddr6(ap netip.AddrPort) []byte {
	b := make([]byte, unix.SizeofSockaddrInet6)
	binary.NativeEndian.PutUint16(b, unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], ap.Port())
	a := ap.Addr().As16()
	copy(b[8:], a[:])
	return b
}

// TestOrigDst decodes the original destination from the control messages
// of either family, after another message, and refuses what is not one.
func TestOrigDst(t *testing.T) {
	v4 := netip.MustParseAddrPort("198.51.100.80:443")
	v6 := netip.MustParseAddrPort("[2001:db8::80]:53")
	other := cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMP, make([]byte, 16))
	for _, c := range []struct {
		oob  []byte
		want netip.AddrPort
	}{
		{cmsg(unix.SOL_IP, unix.IP_ORIGDSTADDR, sockaddr4(v4)), v4},
		{append(other, cmsg(unix.SOL_IPV6, unix.IPV6_ORIGDSTADDR, sockaddr6(v6))...), v6},
		{nil, netip.AddrPort{}},
		{other, netip.AddrPort{}},
		{cmsg(unix.SOL_IP, unix.IP_ORIGDSTADDR, sockaddr6(v6)), netip.AddrPort{}},
		{cmsg(unix.SOL_IPV6, unix.IPV6_ORIGDSTADDR, sockaddr4(v4)), netip.AddrPort{}},
		{cmsg(unix.SOL_IP, unix.IP_ORIGDSTADDR, sockaddr4(v4)[:7]), netip.AddrPort{}},
	} {
		got, err := OrigDst(c.oob)
		if got != c.want || (err == nil) != c.want.IsValid() {
			t.Errorf("OrigDst(%x) = %s, %v; want %s", c.oob, got, err, c.want)
		}
	}
}

// FuzzOrigDst feeds OrigDst control messages: a well-formed message
// around the fuzzer's bytes, of either family, and the bytes as they
// come. It never panics, and what it decodes from a sockaddr is that
// sockaddr's address and port.
func FuzzOrigDst(f *testing.F) {
	f.Add(sockaddr4(netip.MustParseAddrPort("198.51.100.80:443")), false)
	f.Add(sockaddr6(netip.MustParseAddrPort("[2001:db8::1]:53")), true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		OrigDst(b)
		level, typ := unix.SOL_IP, unix.IP_ORIGDSTADDR
		if v6 {
			level, typ = unix.SOL_IPV6, unix.IPV6_ORIGDSTADDR
		}
		got, err := OrigDst(cmsg(level, typ, b))
		if err != nil {
			return
		}
		var want netip.AddrPort
		if v6 {
			want = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])).Unmap(), uint16(b[2])<<8|uint16(b[3]))
		} else {
			want = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), uint16(b[2])<<8|uint16(b[3]))
		}
		if got != want {
			t.Fatalf("OrigDst(%x) = %s, want %s", b, got, want)
		}
	})
}
