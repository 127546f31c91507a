package frame

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// unhex reads hex written with spaces between octets, as in a capture.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// RFC 1661 sections 2, 6.5 and 6.6: the Address and Control fields may be
// left out, the Protocol field may be one octet, and a receiver takes
// every combination.
func TestParseFrame(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		proto uint16
		info  string
		err   error
	}{
		{"full header", "ff 03 c0 21 01 01 00 04", ProtoLCP, "01 01 00 04", nil},
		{"no address and control (ACFC)", "c0 21 09 02 00 08 00 00 00 00", ProtoLCP, "09 02 00 08 00 00 00 00", nil},
		{"IPv6 with a full header", "ff 03 00 57 60 00", ProtoIPv6, "60 00", nil},
		{"IPv6, protocol compressed (PFC)", "ff 03 57 60 00", ProtoIPv6, "60 00", nil},
		{"IPv6, both compressed", "57 60 00", ProtoIPv6, "60 00", nil},
		{"IPv4, both compressed", "21 45", ProtoIPv4, "45", nil},
		{"empty information field", "ff 03 80 57", ProtoIPV6CP, "", nil},
		{"an invalid protocol number is still read", "ff 03 00 56 aa", 0x0056, "aa", nil},
		{"empty", "", 0, "", ErrShort},
		{"address and control only", "ff 03", 0, "", ErrShort},
		{"one even octet", "ff 03 c0", 0, "", ErrShort},
		{"one even octet, no header", "80", 0, "", ErrShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(unhex(t, tc.in))
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if f.Protocol != tc.proto || !bytes.Equal(f.Info, unhex(t, tc.info)) {
				t.Fatalf("got protocol 0x%04x info % x, want 0x%04x %s", f.Protocol, f.Info, tc.proto, tc.info)
			}
		})
	}
}

func TestValidProtocol(t *testing.T) {
	for p, want := range map[uint16]bool{
		ProtoIPv6: true, ProtoIPV6CP: true, ProtoLCP: true, ProtoCHAP: true, 0x0001: true,
		0x0056: false, // low octet even
		0x0101: false, // high octet odd
		0xc022: false,
	} {
		if got := ValidProtocol(p); got != want {
			t.Errorf("ValidProtocol(0x%04x) = %v, want %v", p, got, want)
		}
	}
}

// Append writes what Linux's pppol2tp writes: ff 03 and a two-octet
// protocol.
func TestAppendFrame(t *testing.T) {
	got := Append(nil, ProtoIPv6, []byte{0x60})
	if want := unhex(t, "ff 03 00 57 60"); !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

// Control packets and options, octet by octet as RFC 1661 sections 5 and
// 6, RFC 1332 and RFC 5072 draw them.
func TestPacketEncodings(t *testing.T) {
	id := [8]byte{0x02, 0x24, 0xd4, 0xff, 0xfe, 0xaa, 0xbb, 0xcc}
	for _, tc := range []struct {
		name string
		p    Packet
		opts []Option
		wire string
	}{
		{
			name: "LCP Configure-Request: MRU 1500, CHAP with MD5, Magic-Number",
			p:    Packet{Code: ConfigureRequest, ID: 1},
			opts: []Option{MRU(1500), AuthCHAPMD5(), Magic(0x12345678)},
			// 4 + 4 + 5 + 6 = 19 octets
			wire: "01 01 00 13  01 04 05 dc  03 05 c2 23 05  05 06 12 34 56 78",
		},
		{
			name: "LCP Configure-Nak suggesting PAP",
			p:    Packet{Code: ConfigureNak, ID: 7},
			opts: []Option{AuthPAP()},
			wire: "03 07 00 08  03 04 c0 23",
		},
		{
			name: "LCP Configure-Reject of a Quality-Protocol option",
			p:    Packet{Code: ConfigureReject, ID: 2},
			opts: []Option{{Type: LCPQuality, Data: unhex(t, "c0 25 00 00 00 0a")}},
			wire: "04 02 00 0c  04 08 c0 25 00 00 00 0a",
		},
		{
			name: "LCP Configure-Ack of PFC and ACFC (options with no data)",
			p:    Packet{Code: ConfigureAck, ID: 3},
			opts: []Option{{Type: LCPPFC}, {Type: LCPACFC}},
			wire: "02 03 00 08  07 02  08 02",
		},
		{
			name: "IPV6CP Configure-Request with an Interface-Identifier",
			p:    Packet{Code: ConfigureRequest, ID: 1},
			opts: []Option{InterfaceID(id)},
			wire: "01 01 00 0e  01 0a 02 24 d4 ff fe aa bb cc",
		},
		{
			name: "IPCP Configure-Request for an address (0.0.0.0)",
			p:    Packet{Code: ConfigureRequest, ID: 9},
			opts: []Option{IPAddress(netip.IPv4Unspecified())},
			wire: "01 09 00 0a  03 06 00 00 00 00",
		},
		{
			name: "Terminate-Request with a reason",
			p:    Packet{Code: TerminateRequest, ID: 4, Data: []byte("bye")},
			wire: "05 04 00 07  62 79 65",
		},
		{
			name: "Echo-Request with a Magic-Number",
			p:    Packet{Code: EchoRequest, ID: 5, Data: Echo(0xcafef00d, nil)},
			wire: "09 05 00 08  ca fe f0 0d",
		},
		{
			name: "Protocol-Reject of CCP",
			p:    Packet{Code: ProtocolReject, ID: 6, Data: ProtoReject(ProtoCCP, unhex(t, "01 01 00 04"))},
			wire: "08 06 00 0a  80 fd 01 01 00 04",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			if tc.opts != nil {
				p.Data = EncodeOptions(tc.opts)
			}
			want := unhex(t, tc.wire)
			if got := p.Append(nil); !bytes.Equal(got, want) {
				t.Fatalf("encoded % x\n want % x", got, want)
			}
			back, err := ParsePacket(want)
			if err != nil {
				t.Fatal(err)
			}
			if back.Code != p.Code || back.ID != p.ID || !bytes.Equal(back.Data, p.Data) {
				t.Fatalf("decoded %+v, want %+v", back, p)
			}
			if tc.opts == nil {
				return
			}
			opts, err := ParseOptions(back.Data)
			if err != nil {
				t.Fatal(err)
			}
			if len(opts) != len(tc.opts) {
				t.Fatalf("decoded %d options, want %d", len(opts), len(tc.opts))
			}
			for i := range opts {
				if !opts[i].Equal(tc.opts[i]) {
					t.Fatalf("option %d: %+v, want %+v", i, opts[i], tc.opts[i])
				}
			}
		})
	}
}

func TestPacketFrame(t *testing.T) {
	got := Packet{Code: EchoReply, ID: 1, Data: Echo(1, nil)}.Frame(nil, ProtoLCP)
	if want := unhex(t, "ff 03 c0 21 0a 01 00 08 00 00 00 01"); !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

// RFC 1661 section 5: octets beyond Length are padding; a Length that
// does not fit is a malformed packet.
func TestParsePacketLengths(t *testing.T) {
	p, err := ParsePacket(unhex(t, "09 01 00 08 00 00 00 01 00 00 00"))
	if err != nil || len(p.Data) != 4 {
		t.Fatalf("padding: got %+v, %v", p, err)
	}
	for _, bad := range []string{"", "01 01 00", "01 01 00 03", "01 01 00 09 00 00 00 00", "01 01 ff ff"} {
		if _, err := ParsePacket(unhex(t, bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParsePacket(%s): error %v, want ErrMalformed", bad, err)
		}
	}
}

func TestParseOptionsMalformed(t *testing.T) {
	for _, bad := range []string{"01", "01 01", "01 00", "01 05 00 00", "05 06 00 00 00 00 03"} {
		if _, err := ParseOptions(unhex(t, bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseOptions(%s): error %v, want ErrMalformed", bad, err)
		}
	}
	if opts, err := ParseOptions(nil); err != nil || opts != nil {
		t.Fatalf("no options: %v, %v", opts, err)
	}
}

func TestOptionReaders(t *testing.T) {
	if v, ok := MRU(1456).Uint16(); !ok || v != 1456 {
		t.Errorf("MRU: %d %v", v, ok)
	}
	if _, ok := (Option{Type: LCPMRU, Data: []byte{1}}).Uint16(); ok {
		t.Error("a one-octet MRU read")
	}
	if v, ok := Magic(7).Uint32(); !ok || v != 7 {
		t.Errorf("Magic: %d %v", v, ok)
	}
	p, data, ok := AuthCHAPMD5().AuthProtocol()
	if !ok || p != ProtoCHAP || !bytes.Equal(data, []byte{5}) {
		t.Errorf("Auth: %x % x %v", p, data, ok)
	}
	if _, _, ok := (Option{Type: LCPAuthProtocol, Data: []byte{0xc0}}).AuthProtocol(); ok {
		t.Error("a one-octet Authentication-Protocol read")
	}
	id := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	if got, ok := InterfaceID(id).InterfaceID(); !ok || got != id {
		t.Errorf("InterfaceID: %x %v", got, ok)
	}
	a := netip.MustParseAddr("10.99.0.10")
	if got, ok := IPAddress(a).IPv4(); !ok || got != a {
		t.Errorf("IPAddress: %s %v", got, ok)
	}
	if m, ok := EchoMagic(Echo(0xdeadbeef, []byte("x"))); !ok || m != 0xdeadbeef {
		t.Errorf("EchoMagic: %x %v", m, ok)
	}
	if p, ok := RejectedProtocol(ProtoReject(ProtoIPCP, nil)); !ok || p != ProtoIPCP {
		t.Errorf("RejectedProtocol: %x %v", p, ok)
	}
}

// RFC 1994 section 4.1: the Response's Value is MD5 over the Identifier,
// the secret and the Challenge's Value. The expected hashes were computed
// apart from Go, e.g.:
//
//	printf '\x2atestpass\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f' | md5sum
func TestCHAPMD5(t *testing.T) {
	for _, tc := range []struct {
		id        uint8
		secret    string
		challenge string
		want      string
	}{
		{0x2a, "testpass", "00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f", "1d755184742ad0a351775abb14e11fff"},
		{0x01, "secret", "de ad be ef", "816e5cad18ced100f1b4bc86d990f6bc"},
		{0x00, "", "", "93b885adfe0da089cdf634904fd59f71"},
	} {
		got := CHAPMD5(tc.id, []byte(tc.secret), unhex(t, tc.challenge))
		if hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("CHAPMD5(%#x, %q, %s) = %x, want %s", tc.id, tc.secret, tc.challenge, got, tc.want)
		}
	}
}

// CHAP's packets, RFC 1994 section 4.
func TestCHAPEncodings(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    CHAP
		wire string
	}{
		{"Challenge from lns", CHAP{Code: CHAPChallenge, ID: 0x2a, Value: unhex(t, "00 01 02 03"), Name: []byte("lns")},
			"01 2a 00 0c  04 00 01 02 03  6c 6e 73"},
		{"Response", CHAP{Code: CHAPResponse, ID: 0x2a, Value: unhex(t, "1d755184742ad0a351775abb14e11fff"), Name: []byte("test")},
			"02 2a 00 19  10 1d 75 51 84 74 2a d0 a3 51 77 5a bb 14 e1 1f ff  74 65 73 74"},
		{"Success", CHAP{Code: CHAPSuccess, ID: 0x2a, Message: []byte("Access granted")},
			"03 2a 00 12  41 63 63 65 73 73 20 67 72 61 6e 74 65 64"},
		{"Failure without a message", CHAP{Code: CHAPFailure, ID: 0x2b},
			"04 2b 00 04"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.wire)
			if got := tc.c.Append(nil); !bytes.Equal(got, want) {
				t.Fatalf("encoded % x\n want % x", got, want)
			}
			back, err := ParseCHAP(want)
			if err != nil {
				t.Fatal(err)
			}
			if !sameCHAP(back, tc.c) {
				t.Fatalf("decoded %+v, want %+v", back, tc.c)
			}
		})
	}
	for _, bad := range []string{"01 01 00 04", "01 01 00 06 05 00", "02 01 00 05 01", "05 01 00 04", "01 01 00"} {
		if _, err := ParseCHAP(unhex(t, bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseCHAP(%s): error %v, want ErrMalformed", bad, err)
		}
	}
}

func sameCHAP(a, b CHAP) bool {
	return a.Code == b.Code && a.ID == b.ID && bytes.Equal(a.Value, b.Value) &&
		bytes.Equal(a.Name, b.Name) && bytes.Equal(a.Message, b.Message)
}

// PAP's packets, RFC 1334 section 2.2.
func TestPAPEncodings(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    PAP
		wire string
	}{
		{"Authenticate-Request", PAP{Code: PAPRequest, ID: 1, PeerID: []byte("test"), Password: []byte("pw")},
			"01 01 00 0c  04 74 65 73 74  02 70 77"},
		{"Authenticate-Request, empty password", PAP{Code: PAPRequest, ID: 2, PeerID: []byte("u")},
			"01 02 00 07  01 75  00"},
		{"Authenticate-Ack", PAP{Code: PAPAck, ID: 1, Message: []byte("Login ok")},
			"02 01 00 0d  08 4c 6f 67 69 6e 20 6f 6b"},
		{"Authenticate-Nak", PAP{Code: PAPNak, ID: 1, Message: []byte("no")},
			"03 01 00 07  02 6e 6f"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.wire)
			if got := tc.a.Append(nil); !bytes.Equal(got, want) {
				t.Fatalf("encoded % x\n want % x", got, want)
			}
			back, err := ParsePAP(want)
			if err != nil {
				t.Fatal(err)
			}
			if back.Code != tc.a.Code || back.ID != tc.a.ID || !bytes.Equal(back.PeerID, tc.a.PeerID) ||
				!bytes.Equal(back.Password, tc.a.Password) || !bytes.Equal(back.Message, tc.a.Message) {
				t.Fatalf("decoded %+v, want %+v", back, tc.a)
			}
		})
	}
	// An Ack without its Msg-Length octet still acknowledges.
	if a, err := ParsePAP(unhex(t, "02 05 00 04")); err != nil || a.Code != PAPAck || a.ID != 5 {
		t.Fatalf("a bare Ack: %+v, %v", a, err)
	}
	for _, bad := range []string{"01 01 00 04", "01 01 00 06 05 00", "01 01 00 06 01 75", "02 01 00 06 05 00", "04 01 00 04"} {
		if _, err := ParsePAP(unhex(t, bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParsePAP(%s): error %v, want ErrMalformed", bad, err)
		}
	}
}

func TestNames(t *testing.T) {
	if got := CodeName(ConfigureNak); got != "Configure-Nak" {
		t.Error(got)
	}
	if got := CodeName(42); got != "code 42" {
		t.Error(got)
	}
	if got := ProtocolName(ProtoIPV6CP); got != "IPV6CP" {
		t.Error(got)
	}
	if got := ProtocolName(0x8281); got != "0x8281" {
		t.Error(got)
	}
}
