package foreignfw

import (
	"testing"
)

// FuzzXtRaw feeds the decoders of xt matches' data (bytes from the
// kernel, for the extensions google/nftables leaves raw) with anything:
// they must never panic, and data they cannot read is never a match that
// holds.
func FuzzXtRaw(f *testing.F) {
	f.Add("icmp6", uint32(0), []byte{135, 0, 255, 0})
	f.Add("hl", uint32(0), []byte{0, 255})
	f.Add("state", uint32(0), []byte{6, 0, 0, 0})
	f.Add("pkttype", uint32(0), []byte{0, 0, 0, 0, 1, 0, 0, 0})
	f.Add("multiport", uint32(1), make([]byte, 48))
	f.Add("rt", uint32(0), []byte{})
	site, fw := labSite()
	var packets []Packet
	for _, in := range Intents(site, fw) {
		packets = append(packets, in.Packets...)
	}
	f.Fuzz(func(t *testing.T, name string, rev uint32, data []byte) {
		for i := range packets {
			tri, ok := xtRaw(&packets[i], name, rev, data)
			if !ok && tri == True {
				t.Fatalf("%s rev %d %x: unreadable data taken for a match", name, rev, data)
			}
		}
	})
}
