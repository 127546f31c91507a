package avp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseHeader reads headers laid out as RFC 2661 3.1 draws them:
//
//	|T|L|x|x|S|x|O|P|x|x|x|x|  Ver  |          Length (opt)         |
//	|           Tunnel ID           |           Session ID          |
//	|             Ns (opt)          |             Nr (opt)          |
//	|      Offset Size (opt)        |    Offset pad... (opt)
func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    Header
		payload string
		err     error
	}{{
		name: "a ZLB: T, L and S set, no AVPs",
		in:   "c802 000c 1234 0000 0005 0007",
		want: Header{Control: true, HasLength: true, Sequenced: true, TunnelID: 0x1234, Ns: 5, Nr: 7},
	}, {
		name:    "a data message with no optional field",
		in:      "0002 1234 5678 ff03 c021",
		want:    Header{TunnelID: 0x1234, SessionID: 0x5678},
		payload: "ff03 c021",
	}, {
		name:    "a data message with every optional field: the payload starts after the offset padding",
		in:      "4a02 0012 1234 5678 0001 0000 0002 aabb ff03",
		want:    Header{HasLength: true, Sequenced: true, TunnelID: 0x1234, SessionID: 0x5678, Ns: 1, Offset: 2},
		payload: "ff03",
	}, {
		name:    "a priority data message",
		in:      "0102 0001 0002 ff03",
		want:    Header{Priority: true, TunnelID: 1, SessionID: 2},
		payload: "ff03",
	}, {
		name:    "reserved bits are ignored",
		in:      "30f2 0001 0002 ff03",
		want:    Header{TunnelID: 1, SessionID: 2},
		payload: "ff03",
	}, {
		name:    "octets after Length are not the payload's",
		in:      "4002 000a 0001 0002 ff03 dead",
		want:    Header{HasLength: true, TunnelID: 1, SessionID: 2},
		payload: "ff03",
	}, {
		name: "version 3 (L2TPv3) is not ours",
		in:   "c803 000c 1234 0000 0005 0007",
		err:  ErrVersion,
	}, {
		name: "version 1 (L2F) is not ours",
		in:   "0001 0001 0002",
		err:  ErrVersion,
	}, {
		name: "Length past the datagram",
		in:   "c802 0010 1234 0000 0005 0007",
		err:  ErrShort,
	}, {
		name: "the header ends early",
		in:   "c802 000c 1234 0000 0005",
		err:  ErrShort,
	}, {
		name: "the offset padding ends early",
		in:   "0202 0001 0002 0004 aa",
		err:  ErrShort,
	}, {
		name: "one octet",
		in:   "c8",
		err:  ErrShort,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h, payload, err := Parse(unhex(t, tc.in))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if h != tc.want {
				t.Errorf("header = %+v, want %+v", h, tc.want)
			}
			if !bytes.Equal(payload, unhex(t, tc.payload)) {
				t.Errorf("payload = %x, want %s", payload, tc.payload)
			}
		})
	}
}

// TestControlHeaderRules: RFC 2661 3.1 requires L and S set and O and P
// clear on every control message.
func TestControlHeaderRules(t *testing.T) {
	for _, in := range []string{
		"8802 1234 0000 0005 0007",           // L clear
		"c002 000c 1234 0000 0005 0007 0000", // S clear
		"ca02 000e 1234 0000 0005 0007 0000", // O set
		"c902 000c 1234 0000 0005 0007",      // P set
		"4802 000c 1234 0000 0005 0007",      // a data message
	} {
		if _, err := ParseMessage(unhex(t, in)); !errors.Is(err, ErrHeader) {
			t.Errorf("%s: err = %v, want %v", in, err, ErrHeader)
		}
	}
}

// Control messages captured between Debian's xl2tpd 1.3.18 as a LAC and as
// an LNS, tunnel secret "6pe": what a real peer sends, byte for byte.
const (
	xlSCCRQ = "c802007f000000000000000080080000000000018008000000020100800a0000000300000003800a00000004000000000008000000060690800e000000076c61632d7465737400130000000878656c6572616e63652e636f6d8008000000094a1480080000000a000480160000000bc6b2a8b5e4ab7555e18343ec15eac417"
	xlSCCRP = "c80200954a1400000000000180080000000000028008000000020100800a0000000300000003800a00000004000000000008000000060690800e000000076c6e732d7465737400130000000878656c6572616e63652e636f6d80080000000978c480080000000a000480160000000decabf0aaf8236f1b9447d61d9e1282bc80160000000b08ae72249300cc5559e685bbc653702e"
	xlSCCCN = "c802002a78c4000000010001800800000000000380160000000dfa0b946c577776109754fc243f1ad64b"
	xlZLB   = "c802000c4a14000000010002"
	xlICRQ  = "c802003078c4000000020001800800000000000a80080000000eb693800a0000000f00000001800a0000001200000000"
	xlICRP  = "c802001c4a14b69300010003800800000000000b80080000000e57d2"
	xlICCN  = "c802003278c457d200030002800800000000000c800a0000001800000000800a0000001300000001000a0000002600000000"
	xlCDN   = "c80200264a14b69300020004800800000000000e800a000000010001000080080000000e57d2"
)

func TestParseXL2TPD(t *testing.T) {
	type check struct {
		typ           MessageType
		tunnel, sess  uint16
		ns, nr        uint16
		avps          int
		u16           map[Type]uint16
		str           map[Type]string
		bytes         map[Type]string
		mandatoryOff  []Type
		result        *Result
		sessionScoped bool
	}
	for _, tc := range []struct {
		name string
		in   string
		want check
	}{{
		name: "SCCRQ",
		in:   xlSCCRQ,
		want: check{typ: SCCRQ, avps: 10,
			u16:          map[Type]uint16{ProtocolVersion: 0x0100, FirmwareRevision: 0x0690, AssignedTunnelID: 0x4a14, ReceiveWindowSize: 4},
			str:          map[Type]string{HostName: "lac-test", VendorName: "xelerance.com"},
			bytes:        map[Type]string{Challenge: "c6b2a8b5e4ab7555e18343ec15eac417", FramingCapabilities: "00000003"},
			mandatoryOff: []Type{FirmwareRevision, VendorName}},
	}, {
		name: "SCCRP",
		in:   xlSCCRP,
		want: check{typ: SCCRP, tunnel: 0x4a14, ns: 0, nr: 1, avps: 11,
			u16:          map[Type]uint16{AssignedTunnelID: 0x78c4},
			str:          map[Type]string{HostName: "lns-test"},
			bytes:        map[Type]string{ChallengeResponse: "ecabf0aaf8236f1b9447d61d9e1282bc", Challenge: "08ae72249300cc5559e685bbc653702e"},
			mandatoryOff: []Type{FirmwareRevision, VendorName}},
	}, {
		name: "SCCCN",
		in:   xlSCCCN,
		want: check{typ: SCCCN, tunnel: 0x78c4, ns: 1, nr: 1, avps: 2,
			bytes: map[Type]string{ChallengeResponse: "fa0b946c577776109754fc243f1ad64b"}},
	}, {
		name: "ZLB",
		in:   xlZLB,
		want: check{typ: ZLB, tunnel: 0x4a14, ns: 1, nr: 2},
	}, {
		name: "ICRQ",
		in:   xlICRQ,
		want: check{typ: ICRQ, tunnel: 0x78c4, ns: 2, nr: 1, avps: 4, sessionScoped: true,
			u16:   map[Type]uint16{AssignedSessionID: 0xb693},
			bytes: map[Type]string{CallSerialNumber: "00000001", BearerType: "00000000"}},
	}, {
		name: "ICRP",
		in:   xlICRP,
		want: check{typ: ICRP, tunnel: 0x4a14, sess: 0xb693, ns: 1, nr: 3, avps: 2, sessionScoped: true,
			u16: map[Type]uint16{AssignedSessionID: 0x57d2}},
	}, {
		name: "ICCN",
		in:   xlICCN,
		want: check{typ: ICCN, tunnel: 0x78c4, sess: 0x57d2, ns: 3, nr: 2, avps: 4, sessionScoped: true,
			bytes:        map[Type]string{TxConnectSpeed: "00000000", FramingType: "00000001", RxConnectSpeed: "00000000"},
			mandatoryOff: []Type{RxConnectSpeed}},
	}, {
		name: "CDN",
		in:   xlCDN,
		want: check{typ: CDN, tunnel: 0x4a14, sess: 0xb693, ns: 2, nr: 4, avps: 3, sessionScoped: true,
			u16:    map[Type]uint16{AssignedSessionID: 0x57d2},
			result: &Result{Code: CDNLostCarrier, HasError: true}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			in := unhex(t, tc.in)
			m, err := ParseMessage(in)
			if err != nil {
				t.Fatal(err)
			}
			w := tc.want
			if m.Type() != w.typ || m.TunnelID != w.tunnel || m.SessionID != w.sess || m.Ns != w.ns || m.Nr != w.nr || len(m.AVPs) != w.avps {
				t.Errorf("got %s with %d AVPs, want %s tunnel %d session %d Ns %d Nr %d with %d AVPs", m, len(m.AVPs), w.typ, w.tunnel, w.sess, w.ns, w.nr, w.avps)
			}
			if m.Type().Session() != w.sessionScoped {
				t.Errorf("%s.Session() = %v", m.Type(), m.Type().Session())
			}
			for typ, v := range w.u16 {
				if got, ok, err := m.Uint16(typ); !ok || err != nil || got != v {
					t.Errorf("%s = %#x, %v, %v; want %#x", typ, got, ok, err, v)
				}
			}
			for typ, v := range w.str {
				if got, ok, err := m.Bytes(typ, 1); !ok || err != nil || string(got) != v {
					t.Errorf("%s = %q, %v, %v; want %q", typ, got, ok, err, v)
				}
			}
			for typ, v := range w.bytes {
				if got, ok, err := m.Bytes(typ, 1); !ok || err != nil || hex.EncodeToString(got) != v {
					t.Errorf("%s = %x, %v, %v; want %s", typ, got, ok, err, v)
				}
			}
			for _, a := range m.AVPs {
				want := true
				for _, off := range w.mandatoryOff {
					if a.Type == off {
						want = false
					}
				}
				if a.Mandatory != want || a.Hidden || !a.Recognized() {
					t.Errorf("%s: M %v H %v recognized %v", a.Type, a.Mandatory, a.Hidden, a.Recognized())
				}
			}
			if w.result != nil {
				r, ok, err := m.Result()
				if !ok || err != nil || r != *w.result {
					t.Errorf("result = %+v, %v, %v; want %+v", r, ok, err, *w.result)
				}
			}
			// What ParseMessage reads, Append writes back unchanged.
			out, err := m.Append(nil)
			if err != nil || !bytes.Equal(out, in) {
				t.Errorf("Append = %x, %v; want the message as received", out, err)
			}
		})
	}
}

// TestChallengeResponse checks Respond against the responses xl2tpd
// computed in the captured exchange: the LNS's to the LAC's challenge in
// its SCCRP, and the LAC's to the LNS's in its SCCCN.
func TestChallengeResponse(t *testing.T) {
	secret := []byte("6pe")
	for _, tc := range []struct {
		carrier             MessageType
		challenge, response string
	}{
		{SCCRP, "c6b2a8b5e4ab7555e18343ec15eac417", "ecabf0aaf8236f1b9447d61d9e1282bc"},
		{SCCCN, "08ae72249300cc5559e685bbc653702e", "fa0b946c577776109754fc243f1ad64b"},
	} {
		got := Respond(tc.carrier, secret, unhex(t, tc.challenge))
		if hex.EncodeToString(got[:]) != tc.response {
			t.Errorf("%s response to %s = %x, want %s", tc.carrier, tc.challenge, got, tc.response)
		}
	}
	// The message type is part of the response: an SCCRP's is not an
	// SCCCN's, and another secret gives another response.
	a := Respond(SCCRP, secret, []byte("challenge"))
	if b := Respond(SCCCN, secret, []byte("challenge")); a == b {
		t.Error("SCCRP and SCCCN responses are equal")
	}
	if b := Respond(SCCRP, []byte("6pf"), []byte("challenge")); a == b {
		t.Error("responses with two secrets are equal")
	}
}

func TestParseAVPErrors(t *testing.T) {
	msg := func(avps string) []byte {
		b := unhex(t, avps)
		return append(AppendHeader(nil, Header{Control: true, HasLength: true, Sequenced: true}, len(b)), b...)
	}
	for _, tc := range []struct {
		name string
		avps string
	}{
		{"AVP length below its header", "8005 0000 0000 0001"},
		{"AVP length past the message", "8010 0000 0000 0001"},
		{"a truncated AVP header", "8008 0000 00"},
		{"the first AVP is not the Message Type", "8008 0000 0009 1234"},
		{"a vendor's attribute 0 first", "8008 0009 0000 0001"},
		{"a hidden Message Type", "c008 0000 0000 0001"},
		{"a Message Type of 3 octets", "8009 0000 0000 000001"},
		{"Message Type 0", "8008 0000 0000 0000"},
	} {
		if _, err := ParseMessage(msg(tc.avps)); !errors.Is(err, ErrAVP) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, ErrAVP)
		}
	}
}

// TestAVPFlags reads the M, H and reserved bits of RFC 2661 4.1:
// |M|H| rsvd  |      Length       |.
func TestAVPFlags(t *testing.T) {
	body := "8008 0000 0000 0006" + // HELLO
		"0008 0000 0009 0001" + // M clear
		"4008 0000 0009 0002" + // H set
		"8408 0000 0009 0003" + // a reserved bit set
		"8008 0009 0009 0004" + // a vendor's attribute 9
		"8006 0000 0063" // attribute 99, empty
	b := unhex(t, body)
	m, err := ParseMessage(append(AppendHeader(nil, Header{Control: true, HasLength: true, Sequenced: true}, len(b)), b...))
	if err != nil {
		t.Fatal(err)
	}
	want := []AVP{
		{Mandatory: true, Type: MessageTypeAVP, Value: []byte{0, 6}},
		{Type: AssignedTunnelID, Value: []byte{0, 1}},
		{Hidden: true, Type: AssignedTunnelID, Value: []byte{0, 2}},
		{Mandatory: true, Reserved: 1, Type: AssignedTunnelID, Value: []byte{0, 3}},
		{Mandatory: true, Vendor: 9, Type: AssignedTunnelID, Value: []byte{0, 4}},
		{Mandatory: true, Type: 99, Value: []byte{}},
	}
	if !reflect.DeepEqual(m.AVPs, want) {
		t.Fatalf("AVPs = %+v\nwant %+v", m.AVPs, want)
	}
	recognized := []bool{true, true, true, false, false, false}
	for i, a := range m.AVPs {
		if a.Recognized() != recognized[i] {
			t.Errorf("AVP %d (%+v): recognized %v, want %v", i, a, a.Recognized(), recognized[i])
		}
	}
	// The first AVP of a type is the IETF's, not a vendor's.
	if v, ok, err := m.Uint16(AssignedTunnelID); !ok || err != nil || v != 1 {
		t.Errorf("Assigned Tunnel ID = %d, %v, %v; want 1", v, ok, err)
	}
	out, err := m.Append(nil)
	if err != nil || !bytes.Equal(out[12:], b) {
		t.Errorf("Append = %x, %v; want the AVPs as received", out[12:], err)
	}
}

func TestAccessorsCheckLengths(t *testing.T) {
	m := NewMessage(SCCRQ, 0, 0,
		New(AssignedTunnelID, []byte{1, 2, 3}),
		New(FramingCapabilities, []byte{1}),
		New(Challenge, nil),
		AVP{Hidden: true, Type: ReceiveWindowSize, Value: []byte{0, 4}})
	if _, ok, err := m.Uint16(AssignedTunnelID); !ok || err == nil {
		t.Errorf("a 3-octet Assigned Tunnel ID read: %v, %v", ok, err)
	}
	if _, ok, err := m.Uint32(FramingCapabilities); !ok || err == nil {
		t.Errorf("a 1-octet Framing Capabilities read: %v, %v", ok, err)
	}
	if _, ok, err := m.Bytes(Challenge, 1); !ok || err == nil {
		t.Errorf("an empty Challenge read: %v, %v", ok, err)
	}
	if _, ok, err := m.Uint16(ReceiveWindowSize); !ok || err == nil {
		t.Errorf("a hidden Receive Window Size read: %v, %v", ok, err)
	}
	if _, ok, err := m.Uint16(HostName); ok || err != nil {
		t.Errorf("a missing Host Name: %v, %v", ok, err)
	}
}

func TestResult(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value string
		typ   MessageType
		want  Result
		err   bool
		text  string
	}{
		{"code only (RFC 2661 allows it)", "0001", StopCCN, Result{Code: 1}, false, "result code 1 (general request to clear control connection)"},
		{"code and error", "00020005", CDN, Result{Code: 2, Error: 5, HasError: true}, false, "result code 2 (general error), error 5 (invalid Session ID)"},
		{"with a message", "00040000" + hex.EncodeToString([]byte("no secret")), StopCCN, Result{Code: 4, HasError: true, Message: "no secret"}, false,
			"result code 4 (requester is not authorized to establish a control channel): no secret"},
		{"an unknown code", "00630000", CDN, Result{Code: 99, HasError: true}, false, "result code 99 (unknown)"},
		{"3 octets", "000100", CDN, Result{}, true, ""},
		{"1 octet", "01", CDN, Result{}, true, ""},
	} {
		m := NewMessage(tc.typ, 0, 0, New(ResultCode, unhex(t, tc.value)))
		r, ok, err := m.Result()
		if !ok || (err != nil) != tc.err || r != tc.want {
			t.Errorf("%s: Result() = %+v, %v, %v; want %+v", tc.name, r, ok, err, tc.want)
		}
		if err == nil && r.Describe(tc.typ) != tc.text {
			t.Errorf("%s: Describe = %q, want %q", tc.name, r.Describe(tc.typ), tc.text)
		}
	}
	// NewResult always writes the Error Code: xl2tpd refuses a Result Code
	// AVP of fewer than 10 octets.
	a := NewResult(Result{Code: StopShutdown})
	if !bytes.Equal(a.Value, []byte{0, 6, 0, 0}) || !a.Mandatory {
		t.Errorf("NewResult = %+v", a)
	}
}

func TestNewAndAppend(t *testing.T) {
	// An SCCRQ as RFC 2661 6.1 lists its AVPs, laid out by hand from 4.1
	// and 4.4.
	m := NewMessage(SCCRQ, 0, 0,
		Uint16(ProtocolVersion, 0x0100),
		String(HostName, "lac"),
		Uint32(FramingCapabilities, 3),
		Uint16(AssignedTunnelID, 0xabcd))
	m.Ns, m.Nr = 0, 0
	want := "c802 0037 0000 0000 0000 0000" +
		"8008 0000 0000 0001" +
		"8008 0000 0002 0100" +
		"8009 0000 0007 6c6163" +
		"800a 0000 0003 00000003" +
		"8008 0000 0009 abcd"
	got, err := m.Append(nil)
	if err != nil || !bytes.Equal(got, unhex(t, want)) {
		t.Errorf("Append = %x, %v\nwant %x", got, err, unhex(t, want))
	}
	if _, err := NewMessage(HELLO, 1, 0, New(CalledNumber, make([]byte, MaxValueLen+1))).Append(nil); err == nil {
		t.Error("an AVP too long for its Length field was written")
	}
	if a := Uint16(FirmwareRevision, 1); a.Mandatory {
		t.Error("Firmware Revision is mandatory")
	}
}

func TestAppendData(t *testing.T) {
	got := AppendData(nil, 0x1234, 0x5678, false, 0, []byte{0xff, 0x03, 0xc0, 0x21})
	if want := unhex(t, "0002 1234 5678 ff03 c021"); !bytes.Equal(got, want) {
		t.Errorf("AppendData = %x, want %x", got, want)
	}
	got = AppendData(nil, 1, 2, true, 7, []byte{0xff})
	if want := unhex(t, "0802 0001 0002 0007 0000 ff"); !bytes.Equal(got, want) {
		t.Errorf("AppendData with Ns = %x, want %x", got, want)
	}
	h, payload, err := Parse(got)
	if err != nil || h.Control || !h.Sequenced || h.Ns != 7 || !bytes.Equal(payload, []byte{0xff}) {
		t.Errorf("Parse(AppendData) = %+v, %x, %v", h, payload, err)
	}
}
