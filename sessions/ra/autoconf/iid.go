package autoconf

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
)

// StableAddress returns the stable, semantically opaque address RFC 7217
// forms in prefix (a /64) for the interface iface, the DAD counter and the
// secret key: the prefix, then an interface identifier taken from the low
// 64 bits of
//
//	HMAC-SHA256(key, prefix's 8 bytes || len(iface) || iface || counter)
//
// (RFC 7217 section 5's F(), with no Network_ID). It is the same for a
// prefix on every restart, differs from one prefix (network) to the next,
// and tells nothing of the link's MAC address. An identifier RFC 5453
// reserves is skipped by counting on (section 5, step 3): the returned
// counter is the one used, at least counter.
func StableAddress(prefix netip.Prefix, iface string, counter uint8, key []byte) (netip.Addr, uint8) {
	p := prefix.Masked().Addr().As16()
	for {
		mac := hmac.New(sha256.New, key)
		mac.Write(p[:8])
		mac.Write([]byte{byte(len(iface))})
		mac.Write([]byte(iface))
		mac.Write([]byte{counter})
		sum := mac.Sum(nil)
		iid := binary.BigEndian.Uint64(sum[len(sum)-8:])
		if !reservedIID(iid) || counter == 255 {
			a := p
			binary.BigEndian.PutUint64(a[8:], iid)
			return netip.AddrFrom16(a), counter
		}
		counter++
	}
}

// reservedIID reports whether iid is an interface identifier RFC 5453
// reserves: the subnet-router anycast one (all zeros), the reserved subnet
// anycast ones (RFC 2526) and the IANA Ethernet block.
func reservedIID(iid uint64) bool {
	return iid == 0 ||
		(iid >= 0xfdffffffffffff80 && iid <= 0xfdffffffffffffff) ||
		(iid >= 0x02005efffe000000 && iid <= 0x02005efffeffffff)
}
