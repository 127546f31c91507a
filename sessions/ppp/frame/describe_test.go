package frame

import (
	"fmt"
	"strconv"
	"testing"
)

func TestDescribe(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ff 03 c0 21 01 01 00 13 01 04 05 dc 03 05 c2 23 05 05 06 12 34 56 78", "LCP Configure-Request id=0x1 <mru 1500> <auth chap MD5> <magic 0x12345678>"},
		{"ff 03 c0 21 04 02 00 08 07 02 08 02", "LCP Configure-Reject id=0x2 <pcomp> <accomp>"},
		{"ff 03 c0 21 08 03 00 0a 80 21 01 01 00 04", "LCP Protocol-Reject id=0x3 of IPCP"},
		{"ff 03 c0 21 09 04 00 08 de ad be ef", "LCP Echo-Request id=0x4 magic=0xdeadbeef"},
		{"ff 03 80 57 01 01 00 0e 01 0a 02 24 d4 ff fe aa bb cc", "IPV6CP Configure-Request id=0x1 <addr 224:d4ff:feaa:bbcc>"},
		{"ff 03 c2 23 02 2a 00 0d 04 01 02 03 04 74 65 73 74", `CHAP Response id=0x2a <4-octet value> name="test"`},
		{"ff 03 c0 23 01 01 00 0e 04 74 65 73 74 04 68 75 6e 74", `PAP Authenticate-Request id=0x1 peer-id="test" password=(redacted)`},
		{"ff 03 00 57 60 00 00 00", "IPv6, 4 octets"},
		{"ff 03 c0 21 01 01 00 09", "LCP malformed (malformed PPP packet: Length 9 in 4 octets)"},
	} {
		if got := Describe(unhex(t, tc.in)); got != tc.want {
			t.Errorf("Describe(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzDescribe: Describe never panics, and never writes a PAP password.
func FuzzDescribe(f *testing.F) {
	for _, s := range []string{
		"ff 03 c0 21 01 01 00 13 01 04 05 dc 03 05 c2 23 05 05 06 12 34 56 78",
		"ff 03 c0 23 01 01 00 0e 04 74 65 73 74 04 68 75 6e 74",
		"ff 03 80 21 01 01 00 0a 03 06 0a 00 00 01",
		"c2 23 01 01 00 06 00",
	} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := Describe(b)
		fr, err := Parse(b)
		if err != nil || fr.Protocol != ProtoPAP {
			return
		}
		if a, err := ParsePAP(fr.Info); err == nil && a.Code == PAPRequest {
			want := fmt.Sprintf("PAP Authenticate-Request id=0x%x peer-id=%s password=(redacted)", a.ID, strconv.Quote(string(a.PeerID)))
			if s != want {
				t.Fatalf("%q, want %q: the password must not show", s, want)
			}
		}
	})
}
