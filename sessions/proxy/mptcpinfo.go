package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/sessions/proxy/subflows"
)

// What getsockopt(SOL_MPTCP, MPTCP_FULL_INFO) takes and gives
// (linux/mptcp.h, Linux 6.5 and later; x/sys has neither).
const (
	mptcpFullInfo = 4 // MPTCP_FULL_INFO
	// sizeofFullInfoHead is struct mptcp_full_info up to its struct
	// mptcp_info: six __u32, then the two arrays' addresses.
	sizeofFullInfoHead = 40
	sizeofMPTCPInfo    = 96
	// sizeofSubflowInfo is struct mptcp_subflow_info: __u32 id, then
	// struct mptcp_subflow_addrs (two sockaddr_storage, 8-aligned).
	sizeofSubflowInfo = 8 + 2*128
	// tcpInfoWanted is how much of each subflow's struct tcp_info is
	// asked for: tcpi_state (0) and tcpi_retransmits (2) are in it.
	tcpInfoWanted = 8
	// maxSubflows bounds the subflows read: the kernel allows 8 per
	// connection, plus the first.
	maxSubflows = 16
)

// readMPTCP returns what the kernel says of c, a connection dialed with
// Multipath TCP: its subflows in any state, or that it fell back to plain
// TCP. ok is false when c is no MPTCP socket at all (the kernel has MPTCP
// off, and Go dialed plain TCP).
func readMPTCP(c *net.TCPConn) (conn subflows.Conn, ok bool, err error) {
	if la, ok := c.LocalAddr().(*net.TCPAddr); ok {
		conn.Local = la.AddrPort().Addr().Unmap()
	}
	if ra, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		conn.Remote = ra.AddrPort().Addr().Unmap()
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return conn, false, err
	}
	var sfs []subflows.Subflow
	var proto int
	var infoErr, protoErr error
	if err := rc.Control(func(fd uintptr) {
		proto, protoErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL)
		sfs, infoErr = fullInfo(int(fd))
	}); err != nil {
		return conn, false, err
	}
	if protoErr != nil {
		return conn, false, fmt.Errorf("SO_PROTOCOL: %w", protoErr)
	}
	if proto != unix.IPPROTO_MPTCP {
		return conn, false, nil
	}
	// A connection that fell back passes SOL_MPTCP options to its one
	// TCP subflow, which knows none of them.
	if errors.Is(infoErr, unix.EOPNOTSUPP) || errors.Is(infoErr, unix.ENOPROTOOPT) {
		conn.Fallback = true
		return conn, true, nil
	}
	if infoErr != nil {
		return conn, false, fmt.Errorf("MPTCP_FULL_INFO: %w", infoErr)
	}
	conn.Subflows = sfs
	return conn, true, nil
}

// fullInfo reads the subflows of the MPTCP socket fd.
func fullInfo(fd int) ([]subflows.Subflow, error) {
	head := make([]byte, sizeofFullInfoHead+sizeofMPTCPInfo)
	sfInfo := make([]byte, maxSubflows*sizeofSubflowInfo)
	tcpInfo := make([]byte, maxSubflows*tcpInfoWanted)
	// The kernel writes the arrays at the addresses given in head.
	var pin runtime.Pinner
	pin.Pin(&head[0])
	pin.Pin(&sfInfo[0])
	pin.Pin(&tcpInfo[0])
	defer pin.Unpin()
	ne := binary.NativeEndian
	ne.PutUint32(head[4:], tcpInfoWanted)      // size_tcpinfo_user
	ne.PutUint32(head[12:], sizeofSubflowInfo) // size_sfinfo_user
	ne.PutUint32(head[20:], maxSubflows)       // size_arrays_user
	ne.PutUint64(head[24:], uint64(uintptr(unsafe.Pointer(&sfInfo[0]))))
	ne.PutUint64(head[32:], uint64(uintptr(unsafe.Pointer(&tcpInfo[0]))))
	size := uint32(len(head))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_MPTCP, mptcpFullInfo,
		uintptr(unsafe.Pointer(&head[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return nil, errno
	}
	return parseFullInfo(head, sfInfo, tcpInfo)
}

// parseFullInfo reads the subflows out of what MPTCP_FULL_INFO wrote:
// head (struct mptcp_full_info), the subflows' struct mptcp_subflow_info
// and the first bytes of their struct tcp_info, each array with the
// sizes head says the kernel used.
func parseFullInfo(head, sfInfo, tcpInfo []byte) ([]subflows.Subflow, error) {
	if len(head) < sizeofFullInfoHead {
		return nil, fmt.Errorf("MPTCP_FULL_INFO: %d bytes", len(head))
	}
	ne := binary.NativeEndian
	tcpSize, sfSize := int(ne.Uint32(head[4:])), int(ne.Uint32(head[12:]))
	n := int(ne.Uint32(head[16:])) // num_subflows: all of them, read or not
	if tcpSize < 3 || sfSize < sizeofSubflowInfo {
		return nil, fmt.Errorf("MPTCP_FULL_INFO: records of %d and %d bytes", sfSize, tcpSize)
	}
	n = min(n, len(sfInfo)/sfSize, len(tcpInfo)/tcpSize)
	out := make([]subflows.Subflow, 0, n)
	for i := range n {
		sf, ti := sfInfo[i*sfSize:], tcpInfo[i*tcpSize:]
		out = append(out, subflows.Subflow{
			Local:       sockaddrAddr(sf[8 : 8+128]),
			State:       ti[0],
			Retransmits: int(ti[2]),
		})
	}
	return out, nil
}

// sockaddrAddr reads the address of a struct sockaddr_in or
// sockaddr_in6 (in a sockaddr_storage); the zero Addr for another family.
func sockaddrAddr(b []byte) netip.Addr {
	switch binary.NativeEndian.Uint16(b) {
	case unix.AF_INET:
		return netip.AddrFrom4([4]byte(b[4:8]))
	case unix.AF_INET6:
		return netip.AddrFrom16([16]byte(b[8:24])).Unmap()
	}
	return netip.Addr{}
}
