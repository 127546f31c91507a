package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// txConn is braid's own NETLINK_NETFILTER socket for transactions.
// google/nftables builds the messages, but its Flush cannot say which
// message of a batch the kernel refused; braid sends the batch itself so
// that a refusal names the resource it was about.
//
// A batch is BATCH_BEGIN, the messages, BATCH_END, in one sendmsg: the
// kernel applies all of it or, if any message fails, none of it. Only the
// last message asks for an acknowledgement (the kernel reports every
// failing message anyway), so a batch of thousands of rules does not
// queue thousands of acknowledgements; echoes are turned off.
//
// The driver also reads its rules over this socket (see rules in dump.go);
// mu serialises a transaction and a dump, each of which waits for its
// own answers.
type txConn struct {
	sock
	sndbuf int
}

// dialTx opens the transaction socket in the calling thread's network
// namespace.
func dialTx() (*txConn, error) {
	c := &txConn{}
	if err := c.open(); err != nil {
		return nil, err
	}
	fail := func(what string, err error) (*txConn, error) {
		c.close()
		return nil, fmt.Errorf("netfilter socket: %s: %w", what, err)
	}
	// Acknowledgements carry only the header of the message they answer,
	// plus the kernel's explanation when there is one.
	if err := unix.SetsockoptInt(c.fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1); err != nil {
		return fail("NETLINK_CAP_ACK", err)
	}
	if err := unix.SetsockoptInt(c.fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1); err != nil {
		return fail("NETLINK_EXT_ACK", err)
	}
	var err error
	if c.sndbuf, err = unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF); err != nil {
		return fail("SO_SNDBUF", err)
	}
	return c, nil
}

// msgError is the kernel's refusal of one message of a batch.
type msgError struct {
	index int
	errno unix.Errno
	// why is the kernel's extended acknowledgement message, if any.
	why string
}

func (e msgError) err() error {
	if e.why != "" {
		return fmt.Errorf("%w (%s)", e.errno, e.why)
	}
	return e.errno
}

// errNotCommitted wraps a refusal of the whole batch (not of one of its
// messages): nothing was changed.
var errNotCommitted = errors.New("the kernel refused the transaction")

// commit sends msgs as one transaction. It returns the messages the
// kernel refused, in which case nothing was changed, or an error about
// the batch as a whole.
func (c *txConn) commit(msgs []netlink.Message) ([]msgError, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	begin := c.seq + 1
	first := begin + 1
	end := first + uint32(len(msgs))
	c.seq = end
	size := 2 * (nlmsgHdr + 4)
	for _, m := range msgs {
		size += nlmsgHdr + align4(len(m.Data))
	}
	b := make([]byte, 0, size)
	b = appendMsg(b, unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, begin, nfgenmsg(unix.NFNL_SUBSYS_NFTABLES))
	for i, m := range msgs {
		flags := uint16(m.Header.Flags) &^ (unix.NLM_F_ECHO | unix.NLM_F_ACK)
		if i == len(msgs)-1 {
			flags |= unix.NLM_F_ACK
		}
		b = appendMsg(b, uint16(m.Header.Type), flags, first+uint32(i), m.Data)
	}
	b = appendMsg(b, unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, end, nfgenmsg(unix.NFNL_SUBSYS_NFTABLES))
	if len(b)+4096 > c.sndbuf {
		want := len(b) + 4096
		if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, want); err != nil {
			unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, want)
		}
		if n, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF); err == nil {
			c.sndbuf = n
		}
	}
	if err := c.send(b); err != nil {
		return nil, fmt.Errorf("send a transaction of %d messages (%d bytes): %w", len(msgs), len(b), err)
	}
	var refused []msgError
	var aborted error // a refusal of the whole batch
	err := c.receive(make([]byte, recvBufLen), func(m nlmsg) (bool, error) {
		if m.typ != unix.NLMSG_ERROR || len(m.body) < 4+nlmsgHdr {
			return false, nil
		}
		errno := -int32(binary.NativeEndian.Uint32(m.body[:4]))
		seq := binary.NativeEndian.Uint32(m.body[4+8 : 4+12])
		why := extAck(m)
		switch {
		case seq == begin && errno != 0:
			e := msgError{errno: unix.Errno(errno), why: why}
			aborted = fmt.Errorf("%w: %w", errNotCommitted, e.err())
			return true, nil
		case seq < first || seq >= end:
			return false, nil // an answer to an earlier transaction
		}
		i := int(seq - first)
		if errno != 0 {
			refused = append(refused, msgError{index: i, errno: unix.Errno(errno), why: why})
		}
		return i == len(msgs)-1, nil
	})
	switch {
	case aborted != nil:
		return refused, aborted
	case errors.Is(err, unix.ENOBUFS):
		// Error reports overflowed the socket: there were errors, so
		// the kernel aborted the transaction.
		return refused, fmt.Errorf("%w: its error reports overflowed the socket: %v", errNotCommitted, unix.ENOBUFS)
	case errors.Is(err, errNoAnswer):
		return refused, fmt.Errorf("no answer from the kernel to the transaction within %s", txTimeout)
	case err != nil:
		return refused, fmt.Errorf("the transaction's acknowledgement: %w", err)
	}
	return refused, nil
}

// nfgenmsg is the nfnetlink header of a batch message: family unspec,
// version 0, and the subsystem in network byte order.
func nfgenmsg(subsys uint16) []byte {
	return []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, byte(subsys >> 8), byte(subsys)}
}
