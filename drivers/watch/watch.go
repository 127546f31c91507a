// Package watch subscribes to the kernel's change notifications for what
// braid converges: rtnetlink's link, address, route and rule groups, and
// nftables' ruleset changes. It does not decode them: any notification means
// "something changed", and the engine, which is level-triggered, observes
// and diffs everything again.
package watch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// Groups braid listens to on NETLINK_ROUTE (linux/rtnetlink.h).
var routeGroups = []uint32{
	unix.RTNLGRP_LINK,
	unix.RTNLGRP_IPV4_IFADDR,
	unix.RTNLGRP_IPV6_IFADDR,
	unix.RTNLGRP_IPV4_ROUTE,
	unix.RTNLGRP_IPV6_ROUTE,
	unix.RTNLGRP_IPV4_RULE,
	unix.RTNLGRP_IPV6_RULE,
}

// nfnlGroupNFTables is NFNLGRP_NFTABLES (linux/netfilter/nfnetlink.h).
const nfnlGroupNFTables = 7

// Kernel receives change notifications. Open it in the network namespace
// to watch: its sockets stay there.
type Kernel struct {
	fds []int
	// nf is the nftables socket (-1: none).
	nf int
	// sessionSet reports whether a set's elements belong to a session
	// (nil: none do).
	sessionSet func(table, set string) bool
	// mu is held from reading a batch of notifications to the end of
	// its changed call, and by Drain: a Drain that returns has waited
	// for any batch already read to be reported, so a caller that
	// ignores changes while it writes (the daemon) sees each of its own
	// notifications either drained or reported while it still ignores
	// them, never reported after.
	mu sync.Mutex
}

// Open subscribes to the notifications. The sockets belong to the network
// namespace of the calling thread. sessionSet, if not nil, names the sets
// whose elements a session writes at its own pace (per-domain egress: an
// element per DNS answer): a change of their elements is no change of
// what braid converges, so it is not reported, nor is the new generation
// the kernel announces after it.
func Open(sessionSet func(table, set string) bool) (*Kernel, error) {
	k := &Kernel{nf: -1, sessionSet: sessionSet}
	rt, err := subscribe(unix.NETLINK_ROUTE, routeGroups)
	if err != nil {
		return nil, fmt.Errorf("subscribe to rtnetlink changes: %w", err)
	}
	k.fds = append(k.fds, rt)
	nf, err := subscribe(unix.NETLINK_NETFILTER, []uint32{nfnlGroupNFTables})
	if err != nil {
		k.Close()
		return nil, fmt.Errorf("subscribe to nftables changes: %w", err)
	}
	k.fds = append(k.fds, nf)
	k.nf = nf
	return k, nil
}

// OpenLinks subscribes to link notifications only (a link created,
// removed, or changing state or carrier), in the network namespace of the
// calling thread: the link watcher observes links again on each.
func OpenLinks() (*Kernel, error) {
	fd, err := subscribe(unix.NETLINK_ROUTE, []uint32{unix.RTNLGRP_LINK})
	if err != nil {
		return nil, fmt.Errorf("subscribe to link changes: %w", err)
	}
	return &Kernel{fds: []int{fd}, nf: -1}, nil
}

func subscribe(proto int, groups []uint32) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	for _, g := range groups {
		if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, int(g)); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("join group %d: %w", g, err)
		}
	}
	// A burst larger than the buffer overflows it (ENOBUFS): that is still
	// "something changed", so a modest buffer is enough.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	return fd, nil
}

// Run calls changed each time notifications arrive, until ctx ends or a
// socket fails. Bursts read together are one call.
func (k *Kernel) Run(ctx context.Context, changed func()) error {
	// A pipe wakes the poll when ctx ends.
	var wake [2]int
	if err := unix.Pipe2(wake[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer unix.Close(wake[0])
	defer unix.Close(wake[1])
	stop := context.AfterFunc(ctx, func() { unix.Write(wake[1], []byte{0}) })
	defer stop()

	fds := make([]unix.PollFd, 0, len(k.fds)+1)
	for _, fd := range k.fds {
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	fds = append(fds, unix.PollFd{Fd: int32(wake[0]), Events: unix.POLLIN})
	buf := make([]byte, 1<<16)
	for {
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("watch: poll: %w", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		k.mu.Lock()
		any := false
		for i := range fds[:len(k.fds)] {
			if fds[i].Revents == 0 {
				continue
			}
			if k.drain(int(fds[i].Fd), buf) {
				any = true
			}
		}
		if any {
			changed()
		}
		k.mu.Unlock()
	}
}

// drain reads every queued notification without blocking and reports
// whether there was any (an overflow counts).
func (k *Kernel) drain(fd int, buf []byte) bool {
	got := false
	for {
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		switch {
		case err == nil && n > 0:
			if fd != k.nf || k.sessionSet == nil || Counts(buf[:n], k.sessionSet) {
				got = true
			}
		case errors.Is(err, unix.ENOBUFS):
			got = true // lost some: still a change
		case errors.Is(err, unix.EINTR):
		default:
			return got
		}
	}
}

// Drain discards the notifications queued now, and reports whether there
// were any. The daemon calls it after a pass: what is queued was caused by
// the pass's own writes (or happened before its final observation). A
// batch Run has read already is reported before Drain returns.
func (k *Kernel) Drain() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	buf := make([]byte, 1<<16)
	got := false
	for _, fd := range k.fds {
		if k.drain(fd, buf) {
			got = true
		}
	}
	return got
}

// Close closes the sockets.
func (k *Kernel) Close() error {
	for _, fd := range k.fds {
		unix.Close(fd)
	}
	k.fds = nil
	return nil
}

// nftables notifications (linux/netfilter/nfnetlink.h, nf_tables.h).
const (
	nfnlSubsysNFTables = 10
	nftMsgNewSetElem   = 12
	nftMsgDelSetElem   = 14
	nftMsgNewGen       = 15
	nftaSetElemTable   = 1 // NFTA_SET_ELEM_LIST_TABLE
	nftaSetElemSet     = 2 // NFTA_SET_ELEM_LIST_SET
	nlmsgHdrLen        = 16
	nfgenmsgLen        = 4
)

// Counts reports whether a datagram of nftables notifications holds a
// change: any message but a new generation (which follows every change,
// and is never one alone) and the elements of a set sessionSet names. A
// datagram it cannot read counts: when in doubt, observe again.
func Counts(b []byte, sessionSet func(table, set string) bool) bool {
	for len(b) >= nlmsgHdrLen {
		n := int(binary.NativeEndian.Uint32(b))
		if n < nlmsgHdrLen || n > len(b) {
			return true
		}
		msg := b[:n]
		b = b[min(align4(n), len(b)):]
		typ := binary.NativeEndian.Uint16(msg[4:])
		if typ>>8 != nfnlSubsysNFTables {
			return true
		}
		switch typ & 0xff {
		case nftMsgNewGen:
			continue
		case nftMsgNewSetElem, nftMsgDelSetElem:
			table, set, ok := setElemNames(msg[nlmsgHdrLen:])
			if ok && sessionSet(table, set) {
				continue
			}
		}
		return true
	}
	return len(b) != 0
}

// setElemNames reads the table and set names of a set element message's
// payload (nfgenmsg, then attributes).
func setElemNames(b []byte) (table, set string, ok bool) {
	if len(b) < nfgenmsgLen {
		return "", "", false
	}
	b = b[nfgenmsgLen:]
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return "", "", false
		}
		v := string(bytes.TrimRight(b[4:l], "\x00"))
		switch binary.NativeEndian.Uint16(b[2:]) &^ unix.NLA_F_NESTED {
		case nftaSetElemTable:
			table = v
		case nftaSetElemSet:
			set = v
		}
		b = b[min(align4(l), len(b)):]
	}
	return table, set, table != "" && set != ""
}

func align4(n int) int { return (n + 3) &^ 3 }
