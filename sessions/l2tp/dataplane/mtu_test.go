package dataplane

import "testing"

func TestMTU(t *testing.T) {
	for _, c := range []struct {
		uplink, want, sequenced int
	}{
		// Ethernet: 1500 - 20 (IPv4) - 8 (UDP) - 6 (L2TP) - 4 (PPP).
		{1500, 1462, 1458},
		// A PPPoE uplink.
		{1492, 1454, 1450},
		// Jumbo frames.
		{9000, 8962, 8958},
		// The smallest uplink that still carries IPv6's minimum.
		{1318, 1280, 1276},
		{1322, 1284, 1280},
		// Too small for IPv6: below MinMTU, which the caller refuses.
		{576, 538, 534},
		{30, 0, 0},
		{0, 0, 0},
	} {
		if got := MTU(c.uplink); got != c.want {
			t.Errorf("MTU(%d) = %d, want %d", c.uplink, got, c.want)
		}
		if got := SequencedMTU(c.uplink); got != c.sequenced {
			t.Errorf("SequencedMTU(%d) = %d, want %d", c.uplink, got, c.sequenced)
		}
	}
}
