package probe

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzEchoReply: any bytes a raw socket delivers are parsed without a
// panic, and only the exact reply matches.
func FuzzEchoReply(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		e := testEcho(v6)
		f.Add(v6, reply(e, nil))
		f.Add(v6, e.request())
		f.Add(v6, reply(e, nil)[:echoHeaderLen])
	}
	f.Add(false, []byte{})
	f.Fuzz(func(t *testing.T, v6 bool, b []byte) {
		e := testEcho(v6)
		m, ok := parseEcho(b)
		if ok != (len(b) >= echoHeaderLen) {
			t.Fatalf("parseEcho ok=%v for %d bytes", ok, len(b))
		}
		if !e.isReply(b) {
			return
		}
		// A match is exactly the reply: the right type, code, id, seq and
		// data, and for ICMP the checksum a sender computes (the kernel
		// checks ICMPv6 checksums).
		want := reply(e, nil)
		if v6 {
			want[2], want[3] = b[2], b[3]
		}
		if !bytes.Equal(b, want) {
			t.Fatalf("isReply accepted % x\n  want only % x", b, want)
		}
		if m.id != e.id || m.seq != e.seq {
			t.Fatalf("parsed id %#x seq %#x", m.id, m.seq)
		}
	})
}

// FuzzDNSHeader: any datagram is parsed without a panic; a reply is
// exactly a response (QR) with the query's ID.
func FuzzDNSHeader(f *testing.F) {
	q, _ := dnsQuery(0xbeef, "example.net")
	f.Add(q)
	f.Add([]byte{0xbe, 0xef, 0x81, 0x83, 0, 1, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{0xbe, 0xef, 0x81})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseDNSHeader(b)
		if (err == nil) != (len(b) >= dnsHeaderLen) {
			t.Fatalf("parseDNSHeader error %v for %d bytes", err, len(b))
		}
		got := isDNSReply(b, 0xbeef)
		want := err == nil && b[0] == 0xbe && b[1] == 0xef && b[2]&0x80 != 0
		if got != want || err == nil && h.Response() != (b[2]&0x80 != 0) {
			t.Fatalf("isDNSReply(% x) = %v, want %v", b, got, want)
		}
	})
}

// FuzzEncodeName: a name from a spec is turned into a well-formed wire
// name or refused, never a panic; what is accepted decodes back to the
// name.
func FuzzEncodeName(f *testing.F) {
	for _, s := range []string{"example.net", "example.net.", ".", "", "a..b", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		b, err := encodeName(name)
		if err != nil {
			return
		}
		if len(b) > dnsMaxName {
			t.Fatalf("%q: %d bytes on the wire", name, len(b))
		}
		var labels []string
		for len(b) > 0 && b[0] != 0 {
			n := int(b[0])
			if n > dnsMaxLabel || 1+n >= len(b) {
				t.Fatalf("%q: malformed wire name % x", name, b)
			}
			labels = append(labels, string(b[1:1+n]))
			b = b[1+n:]
		}
		if len(b) != 1 {
			t.Fatalf("%q: the wire name does not end with exactly one zero: % x", name, b)
		}
		want := strings.TrimSuffix(name, ".")
		if got := strings.Join(labels, "."); got != want {
			t.Fatalf("%q decodes to %q", name, got)
		}
	})
}
