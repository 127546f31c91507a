package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// dumpConn is braid's own NETLINK_NETFILTER socket for reading the
// elements of a set, the one large read of the table (10,000 addresses in
// management.allow are 20,000 elements of an interval set).
//
// google/nftables receives with a page-sized buffer, and the kernel sizes
// the messages of a dump after the largest buffer the socket received
// with: a page each, some 100 messages for 20,000 elements. The kernel
// walks an interval set from its first element again for each message, so
// that dump costs it about four times what one of 16 messages of 32 KiB
// does (measured: 12-20 ms against 5 ms). This socket always receives
// with dumpBufLen, and decodes the elements straight into what braid
// compares (an address and whether it ends a range), without the
// library's general element type.
type dumpConn struct {
	sock
	buf []byte
}

// dumpBufLen is the receive buffer: the largest message the kernel builds
// for a dump is 32 KiB.
const dumpBufLen = 32 << 10

// dialDump opens the socket in the calling thread's network namespace.
func dialDump() (*dumpConn, error) {
	c := &dumpConn{buf: make([]byte, dumpBufLen)}
	if err := c.open(); err != nil {
		return nil, err
	}
	return c, nil
}

// setElements lists the elements of braid's set name, whose keys are
// keyLen bytes, as the kernel stores them.
func (c *dumpConn) setElements(set string, keyLen int) ([]element, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	var out []element
	for range dumpAttempts {
		if out, err = c.dumpElements(set, keyLen); !errors.Is(err, errDumpInterrupted) {
			break
		}
	}
	return out, err
}

// dumpElements is one NFT_MSG_GETSETELEM dump. The caller holds c.mu.
func (c *dumpConn) dumpElements(set string, keyLen int) ([]element, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, set)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	var out []element
	err = c.request(c.buf, unix.NFT_MSG_GETSETELEM, unix.NLM_F_DUMP, append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
		func(typ uint16, body []byte) (bool, error) {
			if typ == unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWSETELEM {
				out, err = decodeElements(out, body, keyLen)
			}
			return false, err
		})
	if err != nil {
		return nil, fmt.Errorf("dump the elements of set %s: %w", set, err)
	}
	return out, nil
}

// generation returns the ruleset's generation, which every committed
// transaction (of any program) increments.
func (c *dumpConn) generation() (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var gen uint32
	found := false
	err := c.request(c.buf, unix.NFT_MSG_GETGEN, 0, []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}, func(typ uint16, body []byte) (bool, error) {
		if typ != unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWGEN || len(body) < 4 {
			return false, nil
		}
		err := eachAttr(body[4:], func(typ uint16, v []byte) error {
			if typ == unix.NFTA_GEN_ID && len(v) == 4 {
				gen, found = binary.BigEndian.Uint32(v), true
			}
			return nil
		})
		return true, err
	})
	switch {
	case err != nil:
		return 0, fmt.Errorf("read the ruleset generation: %w", err)
	case !found:
		return 0, errors.New("read the ruleset generation: no generation in the answer")
	}
	return gen, nil
}

// decodeElements appends the elements of one NFT_MSG_NEWSETELEM message
// (its body after the netlink header) to out: each element's key, which
// must be keyLen bytes, and whether it ends an interval. Attributes it
// does not know are skipped.
func decodeElements(out []element, body []byte, keyLen int) ([]element, error) {
	if len(body) < 4 {
		return nil, errors.New("short set element message")
	}
	err := eachAttr(body[4:], func(typ uint16, list []byte) error {
		if typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			return nil
		}
		// Every attribute of the list is an element, as the kernel reads
		// it (it lists them as NFTA_LIST_ELEM; libnftnl and google/nftables
		// number them).
		return eachAttr(list, func(_ uint16, elem []byte) error {
			var e element
			var key []byte
			err := eachAttr(elem, func(typ uint16, v []byte) error {
				switch typ {
				case unix.NFTA_SET_ELEM_KEY:
					return eachAttr(v, func(typ uint16, v []byte) error {
						if typ == unix.NFTA_DATA_VALUE {
							key = v
						}
						return nil
					})
				case unix.NFTA_SET_ELEM_FLAGS:
					if len(v) != 4 {
						return errors.New("set element flags of the wrong size")
					}
					e.end = binary.BigEndian.Uint32(v)&unix.NFT_SET_ELEM_INTERVAL_END != 0
				}
				return nil
			})
			if err != nil {
				return err
			}
			if len(key) != keyLen {
				return fmt.Errorf("set element of %d bytes in a set of %d-byte keys", len(key), keyLen)
			}
			e.key, _ = netip.AddrFromSlice(key)
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// eachAttr calls fn with the type (without the nested and byte order
// flags) and the value of each netlink attribute in b, in order, and
// stops at the first error.
func eachAttr(b []byte, fn func(typ uint16, v []byte) error) error {
	for len(b) >= unix.SizeofNlAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < unix.SizeofNlAttr || l > len(b) {
			return errors.New("malformed netlink attribute")
		}
		if err := fn(typ, b[unix.SizeofNlAttr:l]); err != nil {
			return err
		}
		b = b[min(align4(l), len(b)):]
	}
	return nil
}
