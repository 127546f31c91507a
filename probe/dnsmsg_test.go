package probe

import (
	"bytes"
	"strings"
	"testing"
)

func TestEncodeName(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	// 3 labels of 63 and one of 61: 4*64 bytes with the lengths, minus
	// 2, plus the root: 255.
	longest := long63 + "." + long63 + "." + long63 + "." + strings.Repeat("b", 61)
	cases := []struct {
		name string
		want []byte
		err  string
	}{
		{"example.net", []byte("\x07example\x03net\x00"), ""},
		{"example.net.", []byte("\x07example\x03net\x00"), ""},
		{"a", []byte("\x01a\x00"), ""},
		{".", []byte{0}, ""},
		{"Mixed-Case.Example", []byte("\x0aMixed-Case\x07Example\x00"), ""},
		{long63 + ".net", append(append([]byte{63}, long63...), "\x03net\x00"...), ""},
		{longest, nil, ""},
		{"", nil, "empty domain name"},
		{"example..net", nil, "empty label"},
		{".example.net", nil, "empty label"},
		{"example.net..", nil, "empty label"},
		{long63 + "a.net", nil, "label longer than 63 bytes"},
		{longest + "b", nil, "longer than 255 bytes"},
	}
	for _, c := range cases {
		got, err := encodeName(c.name)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("encodeName(%q): error %v, want one with %q", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("encodeName(%q): %v", c.name, err)
		case c.want != nil && !bytes.Equal(got, c.want):
			t.Errorf("encodeName(%q)\n got % x\nwant % x", c.name, got, c.want)
		case len(got) > dnsMaxName:
			t.Errorf("encodeName(%q) is %d bytes", c.name, len(got))
		}
	}
	if got, _ := encodeName(longest); len(got) != dnsMaxName {
		t.Errorf("the longest name is %d bytes on the wire, want %d", len(got), dnsMaxName)
	}
}

func TestDNSQuery(t *testing.T) {
	got, err := dnsQuery(0xbeef, "example.net")
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0xbe, 0xef, // ID
		0x01, 0x00, // QR 0, opcode 0 (QUERY), RD 1, RCODE 0
		0, 1, 0, 0, 0, 0, 0, 0, // one question, no answer, authority, additional
		7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'n', 'e', 't', 0,
		0, 1, // type A
		0, 1, // class IN
	}
	if !bytes.Equal(got, want) {
		t.Errorf("query\n got % x\nwant % x", got, want)
	}
	if _, err := dnsQuery(1, "a..b"); err == nil {
		t.Error("a query for a name with an empty label was built")
	}
}

func TestParseDNSHeader(t *testing.T) {
	// The header of a response to the query above: QR, RD, RA, NXDOMAIN,
	// one question, one authority record.
	b := []byte{0xbe, 0xef, 0x81, 0x83, 0, 1, 0, 0, 0, 1, 0, 0, 7, 'e'}
	h, err := parseDNSHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := dnsHeader{ID: 0xbeef, Flags: 0x8183, QDCount: 1, NSCount: 1}
	if h != want {
		t.Errorf("header %+v, want %+v", h, want)
	}
	if !h.Response() || h.RCode() != 3 {
		t.Errorf("response %v rcode %d, want true 3", h.Response(), h.RCode())
	}
	if _, err := parseDNSHeader(b[:11]); err != errShortDNS {
		t.Errorf("11 bytes: error %v, want %v", err, errShortDNS)
	}
}

func TestIsDNSReply(t *testing.T) {
	query, _ := dnsQuery(0xbeef, "example.net")
	response := func(id uint16, flags uint16) []byte {
		b := bytes.Clone(query)
		b[0], b[1], b[2], b[3] = byte(id>>8), byte(id), byte(flags>>8), byte(flags)
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want bool
	}{
		{"NOERROR", response(0xbeef, 0x8180), true},
		{"SERVFAIL", response(0xbeef, 0x8182), true},
		{"NXDOMAIN", response(0xbeef, 0x8183), true},
		{"REFUSED", response(0xbeef, 0x8105), true},
		{"truncated (TC)", response(0xbeef, 0x8380), true},
		{"a bare header", response(0xbeef, 0x8180)[:12], true},
		{"another ID", response(0xbef0, 0x8180), false},
		{"the query itself", query, false},
		{"a query with the ID", response(0xbeef, 0x0100), false},
		{"short", response(0xbeef, 0x8180)[:11], false},
		{"empty", nil, false},
	}
	for _, c := range cases {
		if got := isDNSReply(c.b, 0xbeef); got != c.want {
			t.Errorf("%s: isDNSReply = %v, want %v", c.name, got, c.want)
		}
	}
}
