package dhcp4

import (
	"bytes"
	"net"
	"testing"
)

// Option 61: the configured octets in either case, or type 1 and the MAC.
func TestClientID(t *testing.T) {
	hw := net.HardwareAddr{0x00, 0x24, 0xd4, 0xaa, 0xbb, 0xcc}
	for _, tt := range []struct {
		in   string
		want []byte
	}{
		{"", []byte{1, 0x00, 0x24, 0xd4, 0xaa, 0xbb, 0xcc}},
		{"00:62:72:61:69:64", []byte("\x00braid")},
		{"FF:0A", []byte{0xff, 0x0a}},
	} {
		got, err := Config{ClientID: tt.in}.clientID(hw)
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("clientID %q = %x, %v; want %x", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"01", "zz:00", "0:1:2"} {
		if got, err := (Config{ClientID: bad}).clientID(hw); err == nil {
			t.Errorf("clientID %q = %x, want an error", bad, got)
		}
	}
}
