package socksaddr

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		want Addr
		n    int
		err  error // nil, ErrShort, or errAny
	}{
		{"ipv4", []byte{1, 192, 0, 2, 7, 0x01, 0xbb, 'x'}, Addr{IP: netip.MustParseAddr("192.0.2.7"), Port: 443}, 7, nil},
		{"ipv6", append(append([]byte{4}, netip.MustParseAddr("2001:db8::1").AsSlice()...), 0, 80), Addr{IP: netip.MustParseAddr("2001:db8::1"), Port: 80}, 19, nil},
		{"domain", append([]byte{3, 11}, append([]byte("example.net"), 0x1f, 0x90)...), Addr{Domain: "example.net", Port: 8080}, 15, nil},
		{"empty", nil, Addr{}, 0, ErrShort},
		{"ipv4 short", []byte{1, 192, 0, 2, 7, 1}, Addr{}, 0, ErrShort},
		{"ipv6 short", []byte{4, 0x20, 1}, Addr{}, 0, ErrShort},
		{"domain no length", []byte{3}, Addr{}, 0, ErrShort},
		{"domain short", []byte{3, 5, 'a', 'b'}, Addr{}, 0, ErrShort},
		{"domain empty", []byte{3, 0, 0, 80}, Addr{}, 0, errAny},
		{"domain bad octet", []byte{3, 2, 'a', '/', 0, 80}, Addr{}, 0, errAny},
		{"type 0", []byte{0, 1, 2, 3, 4, 5, 6}, Addr{}, 0, errAny},
		{"type 5", []byte{5, 1, 2, 3, 4, 5, 6}, Addr{}, 0, errAny},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, n, err := Parse(c.in)
			switch {
			case c.err == nil && err != nil:
				t.Fatalf("Parse: %v", err)
			case c.err == ErrShort && !errors.Is(err, ErrShort):
				t.Fatalf("Parse: %v, want ErrShort", err)
			case c.err == errAny && (err == nil || errors.Is(err, ErrShort)):
				t.Fatalf("Parse: %v, want a decoding error", err)
			}
			if a != c.want || n != c.n {
				t.Fatalf("Parse = %+v, %d; want %+v, %d", a, n, c.want, c.n)
			}
		})
	}
}

var errAny = errors.New("any")

func TestReadStopsAtTheAddress(t *testing.T) {
	for _, a := range []Addr{
		{IP: netip.MustParseAddr("10.0.0.1"), Port: 1},
		{IP: netip.MustParseAddr("fd00::2"), Port: 65535},
		{Domain: "a.example", Port: 53},
	} {
		b := Append(nil, a)
		r := bytes.NewReader(append(b, "rest"...))
		got, err := Read(r)
		if err != nil || got != a {
			t.Fatalf("Read(%x) = %+v, %v; want %+v", b, got, err, a)
		}
		rest, _ := io.ReadAll(r)
		if string(rest) != "rest" {
			t.Fatalf("Read(%x) took too much: %q left", b, rest)
		}
		// Every cut of the encoding is an unexpected end.
		for i := 1; i < len(b); i++ {
			if _, err := Read(bytes.NewReader(b[:i])); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("Read(%x) = %v, want io.ErrUnexpectedEOF", b[:i], err)
			}
		}
	}
	if _, err := Read(bytes.NewReader(nil)); err != io.EOF {
		t.Fatalf("Read(empty) = %v, want io.EOF", err)
	}
}

func TestAddrString(t *testing.T) {
	for a, want := range map[Addr]string{
		{IP: netip.MustParseAddr("192.0.2.1"), Port: 80}:   "192.0.2.1:80",
		{IP: netip.MustParseAddr("2001:db8::1"), Port: 80}: "[2001:db8::1]:80",
		{Domain: "example.net", Port: 443}:                 "example.net:443",
	} {
		if got := a.String(); got != want {
			t.Errorf("%+v.String() = %q, want %q", a, got, want)
		}
	}
}
