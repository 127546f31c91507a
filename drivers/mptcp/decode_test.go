package mptcp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/reconcile/plan"
)

// encodeEndpoint encodes a GET_ADDR answer body as the kernel does: the
// nested address attribute.
func encodeEndpoint(t testing.TB, e kernelEndpoint) []byte {
	t.Helper()
	b, err := encodeRequest(func(ae *netlink.AttributeEncoder) { encodeAddr(ae, e) })
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawAddr encodes a nested address from the attributes fn writes, for
// answers the encoder would never produce.
func rawAddr(t testing.TB, fn func(ae *netlink.AttributeEncoder)) []byte {
	t.Helper()
	b, err := encodeRequest(fn)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeEndpoint(t *testing.T) {
	v4 := kernelEndpoint{ID: 3, Addr: netip.MustParseAddr("10.101.0.2"), Flags: FlagSubflow | FlagBackup, IfIndex: 4}
	v6 := kernelEndpoint{ID: 255, Addr: netip.MustParseAddr("2001:db8:101::2"), Port: 10000, Flags: FlagSignal, IfIndex: 7}
	tests := []struct {
		name string
		in   []byte
		want kernelEndpoint
		err  string
	}{
		{name: "IPv4", in: encodeEndpoint(t, v4), want: v4},
		{name: "IPv6 with a port", in: encodeEndpoint(t, v6), want: v6},
		{name: "unknown attributes are skipped", in: rawAddr(t, func(ae *netlink.AttributeEncoder) {
			encodeAddr(ae, v4)
			ae.Uint64(42, 1)
		}), want: v4},
		{name: "no family", in: rawAddr(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint8(addrAttrID, 1)
			ae.Bytes(addrAttrAddr4, []byte{10, 0, 0, 1})
		}), err: "unknown address family 0"},
		{name: "IPv4 family, IPv6 address", in: rawAddr(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint16(addrAttrFamily, unix.AF_INET)
			ae.Uint8(addrAttrID, 1)
			ae.Bytes(addrAttrAddr6, make([]byte, 16))
		}), err: "IPv4 endpoint with a 0-byte address"},
		{name: "short IPv6 address", in: rawAddr(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint16(addrAttrFamily, unix.AF_INET6)
			ae.Uint8(addrAttrID, 1)
			ae.Bytes(addrAttrAddr6, make([]byte, 15))
		}), err: "IPv6 endpoint with a 15-byte address"},
		{name: "no id", in: rawAddr(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint16(addrAttrFamily, unix.AF_INET)
			ae.Bytes(addrAttrAddr4, []byte{10, 0, 0, 1})
		}), err: "without an id"},
		{name: "a flags attribute of the wrong size", in: rawAddr(t, func(ae *netlink.AttributeEncoder) {
			encodeAddr(ae, v4)
			ae.Uint16(addrAttrFlags, 1)
		}), err: "decode mptcp endpoint"},
		{name: "no address attribute", in: func() []byte {
			ae := netlink.NewAttributeEncoder()
			ae.Uint32(attrSubflows, 2)
			b, _ := ae.Encode()
			return b
		}(), err: "no address attribute"},
		{name: "two address attributes", in: append(encodeEndpoint(t, v4), encodeEndpoint(t, v6)...), err: "two addresses"},
		{name: "truncated", in: encodeEndpoint(t, v4)[:7], err: "decode mptcp endpoint"},
		{name: "empty", in: nil, err: "no address attribute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeEndpoint(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeLimits(t *testing.T) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrRcvAddAddrs, 2)
	ae.Uint32(attrSubflows, 3)
	b, _ := ae.Encode()
	got, err := decodeLimits(b)
	if err != nil || got != (Limits{Subflows: 3, AddAddrAccepted: 2}) {
		t.Errorf("decodeLimits = %+v, %v", got, err)
	}
	if _, err := decodeLimits(b[:8]); err == nil {
		t.Errorf("decodeLimits of one limit succeeded")
	}
}

func TestFlagsString(t *testing.T) {
	for f, want := range map[Flags]string{
		0:                                      "",
		FlagSubflow:                            "subflow",
		FlagSubflow | FlagBackup:               "subflow backup",
		FlagFullmesh | FlagSubflow:             "subflow fullmesh",
		FlagSignal | FlagImplicit:              "signal implicit",
		FlagSubflow | FlagBackup | 1<<5 | 1<<9: "subflow backup 0x220",
	} {
		if got := f.String(); got != want {
			t.Errorf("Flags(%#x) = %q, want %q", uint32(f), got, want)
		}
	}
}

func TestResources(t *testing.T) {
	e := Endpoint{Addr: netip.MustParseAddr("2001:db8:101::2"), Dev: "wan1", Flags: FlagSubflow | FlagBackup}
	if got := e.Address(); got != "mptcp.endpoint[2001:db8:101::2]" {
		t.Errorf("address %q", got)
	}
	if got := plan.Describe(e); got != "dev=wan1 flags=subflow backup" {
		t.Errorf("fields %q", got)
	}
	f := foreignEndpoint{Endpoint: e, ID: 7, Port: 10000}
	if f.Address() != e.Address() || plan.Describe(f) != "id=7 port=10000 dev=wan1 flags=subflow backup" {
		t.Errorf("foreign: %s %s", f.Address(), plan.Describe(f))
	}
	l := Limits{Subflows: 3, AddAddrAccepted: 2}
	if l.Address() != "mptcp.limits" || plan.Describe(l) != "subflows=3 add_addr_accepted=2" {
		t.Errorf("limits: %s %s", l.Address(), plan.Describe(l))
	}
}

// FuzzDecodeEndpoint feeds the endpoint decoder arbitrary kernel answers:
// it must never panic, and whatever it accepts must encode back to an
// answer that decodes to the same endpoint.
func FuzzDecodeEndpoint(f *testing.F) {
	for _, e := range []kernelEndpoint{
		{ID: 1, Addr: netip.MustParseAddr("10.101.0.2"), Flags: FlagSubflow, IfIndex: 3},
		{ID: 200, Addr: netip.MustParseAddr("2001:db8::1"), Port: 443, Flags: FlagSignal | FlagFullmesh},
		{ID: 9, Addr: netip.MustParseAddr("::ffff:10.0.0.1"), Flags: FlagImplicit, IfIndex: -1},
	} {
		f.Add(encodeEndpoint(f, e))
	}
	f.Add([]byte{})
	f.Add([]byte{4, 0, 1, 0})
	f.Add([]byte{8, 0, 1, 0x80, 4, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEndpoint(b)
		if err != nil {
			return
		}
		// encodeAddr leaves out id 0 (to the kernel: "choose one").
		again, err := decodeEndpoint(rawAddr(t, func(ae *netlink.AttributeEncoder) {
			encodeAddr(ae, e)
			if e.ID == 0 {
				ae.Uint8(addrAttrID, 0)
			}
		}))
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", e, err)
		}
		if again != e {
			t.Fatalf("round trip: %+v, then %+v", e, again)
		}
		_ = Endpoint{Addr: e.Addr, Flags: e.Flags}.Fields()
	})
}

// FuzzDecodeLimits: the limits decoder never panics on arbitrary answers.
func FuzzDecodeLimits(f *testing.F) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrRcvAddAddrs, 0)
	ae.Uint32(attrSubflows, 2)
	b, _ := ae.Encode()
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeLimits(b)
		if err == nil {
			_ = l.Fields()
		}
	})
}
