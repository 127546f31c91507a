package nftables

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// TimedElement is one address for a timeout set of braid's table (see
// Ruleset.AddTimeoutSet), and how long it stays there.
type TimedElement struct {
	// Set is the timeout set's name (egress_isp1_v4): an IPv4 set takes
	// IPv4 addresses, an IPv6 set IPv6 ones.
	Set string
	// Addr is the address. An IPv4-mapped IPv6 address (an AAAA record
	// may hold one) is an IPv6 address here, of 16 bytes: IPv4 packets
	// match the IPv4 set.
	Addr netip.Addr
	// Timeout is how long the element stays, from now, at least a
	// millisecond: the kernel removes it then.
	Timeout time.Duration
}

// Elements writes a session's elements into braid's timeout sets, one
// answer at a time and at a high rate: the DNS forwarder puts the
// addresses of a name that leaves by an uplink into that uplink's egress
// set before it sends the answer. Its methods are safe for concurrent
// use; calls are serialised.
//
// Each Add is one nfnetlink batch on a socket kept open: one message per
// set, with every element and its timeout, committed by the kernel as a
// whole or not at all. The kernel processes a batch within the send, so
// the answer is already there when Add reads it: when Add returns
// without an error, the elements match packets. Nothing is read from the
// kernel beforehand, and the messages are built in buffers kept from one
// call to the next.
//
// An element already in the set has its timeout renewed: each element
// carries both its timeout and its expiration (NFTA_SET_ELEM_EXPIRATION,
// set to the timeout). A kernel since 6.10 (commit 4201f3938914, "set
// element timeout update support") updates an existing element's
// expiration when the add carries one; an add carrying only the same
// timeout as before leaves it as it was. Older kernels keep the first
// timeout until the element expires, and the next answer adds it anew.
type Elements struct {
	mu   sync.Mutex
	s    sock
	out  []byte // the batch being built
	in   []byte // the kernel's answers
	errs []error
}

// OpenElements opens the writer's netlink socket in the network
// namespace of the calling thread: braid's table is the one of that
// namespace.
func OpenElements() (*Elements, error) {
	e := &Elements{out: make([]byte, 0, 4096), in: make([]byte, 8192)}
	if err := e.s.open(); err != nil {
		return nil, fmt.Errorf("nftables elements: %w", err)
	}
	// Acknowledgements carry only the header of what they answer, and
	// the kernel's explanation of an error.
	for _, opt := range []int{unix.NETLINK_CAP_ACK, unix.NETLINK_EXT_ACK} {
		if err := unix.SetsockoptInt(e.s.fd, unix.SOL_NETLINK, opt, 1); err != nil {
			e.s.close()
			return nil, fmt.Errorf("nftables elements: netfilter socket option %d: %w", opt, err)
		}
	}
	return e, nil
}

// Close closes the writer's socket. The elements stay, until they expire.
func (e *Elements) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.s.fd < 0 {
		return nil
	}
	err := e.s.close()
	e.s.fd = -1
	return err
}

// errElementsClosed is the error of Add after Close.
var errElementsClosed = errors.New("nftables elements: closed")

// Add commits es to their sets in braid's table as one transaction, and
// returns once the kernel has: either every element is in its set (new,
// or with its timeout renewed) or, if the kernel refused any (a set that
// does not exist, an address of the other family), none is added.
func (e *Elements) Add(ctx context.Context, es []TimedElement) error {
	if len(es) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, el := range es {
		if err := el.check(); err != nil {
			return fmt.Errorf("nftables elements: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.s.fd < 0 {
		return errElementsClosed
	}
	begin := e.s.seq + 1
	var msgs int
	e.out, msgs = appendElementsBatch(e.out[:0], begin, es)
	end := begin + uint32(msgs) + 1
	e.s.seq = end
	if _, err := unix.Write(e.s.fd, e.out); err != nil {
		return fmt.Errorf("nftables elements: send %d elements: %w", len(es), err)
	}
	return e.answers(begin, end, es)
}

// answers reads the kernel's answers to the batch numbered begin..end
// (its begin and end messages included) until the acknowledgement of its
// last message, and returns the refusals.
func (e *Elements) answers(begin, end uint32, es []TimedElement) error {
	e.errs = e.errs[:0]
	last := end - 1
	err := e.s.receive(e.in, func(m nlmsg) (bool, error) {
		if m.typ != unix.NLMSG_ERROR || len(m.body) < 4+nlmsgHdr {
			return false, nil
		}
		errno := -int32(binary.NativeEndian.Uint32(m.body[:4]))
		seq := binary.NativeEndian.Uint32(m.body[4+8 : 4+12])
		switch {
		case seq == begin && errno != 0:
			return true, fmt.Errorf("%w: %w", errNotCommitted, msgError{errno: unix.Errno(errno), why: extAck(m)}.err())
		case seq <= begin || seq >= end:
			return false, nil // an answer to an earlier batch
		}
		if errno != 0 {
			e.errs = append(e.errs, fmt.Errorf("set %s: %w", setOfMsg(es, int(seq-begin-1)), msgError{errno: unix.Errno(errno), why: extAck(m)}.err()))
		}
		return seq == last, nil
	})
	switch {
	case errors.Is(err, unix.ENOBUFS):
		return fmt.Errorf("nftables elements: %w: its error reports overflowed the socket", errNotCommitted)
	case err != nil:
		return fmt.Errorf("nftables elements: %w", err)
	case len(e.errs) > 0:
		return fmt.Errorf("nftables elements: the kernel refused the %d elements, so none was added: %w", len(es), errors.Join(e.errs...))
	}
	return nil
}

// check reports what is wrong with an element before it is sent.
func (el TimedElement) check() error {
	switch {
	case !validID(el.Set):
		return fmt.Errorf("element %s: invalid set name %q", el.Addr, el.Set)
	case !el.Addr.IsValid():
		return fmt.Errorf("set %s: element without an address", el.Set)
	case el.Addr.Zone() != "":
		return fmt.Errorf("set %s: element %s has a zone", el.Set, el.Addr)
	case el.Timeout < time.Millisecond:
		return fmt.Errorf("set %s: element %s: timeout %s is under a millisecond", el.Set, el.Addr, el.Timeout)
	}
	return nil
}

// elementsPerMsg bounds the elements of one message: its element list is
// one attribute, whose length is 16 bits (an IPv6 element takes 56 bytes).
const elementsPerMsg = 1024

// msgRuns calls fn with each run of es that goes into one message: the
// elements of one set, consecutive, at most elementsPerMsg.
func msgRuns(es []TimedElement, fn func(run []TimedElement)) {
	for len(es) > 0 {
		n := 1
		for n < len(es) && n < elementsPerMsg && es[n].Set == es[0].Set {
			n++
		}
		fn(es[:n])
		es = es[n:]
	}
}

// setOfMsg names the set of the i-th message of a batch of es.
func setOfMsg(es []TimedElement, i int) string {
	name, k := "", 0
	msgRuns(es, func(run []TimedElement) {
		if k == i {
			name = run[0].Set
		}
		k++
	})
	return name
}

// appendElementsBatch appends to b a batch numbered from begin: its begin
// message, one NFT_MSG_NEWSETELEM (create, not exclusive: an element
// already there is updated) per run of es (see msgRuns), the last one
// asking for an acknowledgement, and its end message. It returns the
// batch and the number of element messages.
func appendElementsBatch(b []byte, begin uint32, es []TimedElement) ([]byte, int) {
	b = appendMsg(b, unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, begin, nfgenmsg(unix.NFNL_SUBSYS_NFTABLES))
	var runs int
	msgRuns(es, func([]TimedElement) { runs++ })
	seq, i := begin, 0
	msgRuns(es, func(run []TimedElement) {
		seq++
		i++
		flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_CREATE)
		if i == runs {
			flags |= unix.NLM_F_ACK
		}
		b = appendNewSetElem(b, seq, flags, run)
	})
	b = appendMsg(b, unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, seq+1, nfgenmsg(unix.NFNL_SUBSYS_NFTABLES))
	return b, runs
}

// appendNewSetElem appends one NFT_MSG_NEWSETELEM message adding es (all
// of one set) to braid's table: each element's key, its timeout and its
// expiration (the same: see Elements), in milliseconds.
func appendNewSetElem(b []byte, seq uint32, flags uint16, es []TimedElement) []byte {
	start := len(b)
	b = binary.NativeEndian.AppendUint32(b, 0) // length, set below
	b = binary.NativeEndian.AppendUint16(b, unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWSETELEM)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0)
	b = appendStringAttr(b, unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
	b = appendStringAttr(b, unix.NFTA_SET_ELEM_LIST_SET, es[0].Set)
	list := len(b)
	b = appendAttr(b, unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED, nil)
	for _, el := range es {
		item := len(b)
		b = appendAttr(b, unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED, nil)
		key := len(b)
		b = appendAttr(b, unix.NFTA_SET_ELEM_KEY|unix.NLA_F_NESTED, nil)
		if el.Addr.Is4() {
			a := el.Addr.As4()
			b = appendAttr(b, unix.NFTA_DATA_VALUE, a[:])
		} else {
			a := el.Addr.As16()
			b = appendAttr(b, unix.NFTA_DATA_VALUE, a[:])
		}
		endAttr(b, key)
		ms := uint64(el.Timeout.Milliseconds())
		b = appendU64Attr(b, unix.NFTA_SET_ELEM_TIMEOUT, ms)
		b = appendU64Attr(b, unix.NFTA_SET_ELEM_EXPIRATION, ms)
		endAttr(b, item)
	}
	endAttr(b, list)
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// appendStringAttr appends a NUL-terminated string attribute without
// building the string's bytes elsewhere first.
func appendStringAttr(b []byte, typ uint16, s string) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofNlAttr+len(s)+1))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, s...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// appendU64Attr appends a 64-bit attribute in network byte order.
func appendU64Attr(b []byte, typ uint16, v uint64) []byte {
	b = binary.NativeEndian.AppendUint16(b, unix.SizeofNlAttr+8)
	b = binary.NativeEndian.AppendUint16(b, typ)
	return binary.BigEndian.AppendUint64(b, v)
}
