package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// mptcpDiag is one established MPTCP socket as the kernel's sock_diag
// reports it (inet_diag with its struct mptcp_info, linux/mptcp.h).
// iproute2's ss of this machine (6.1) prints write_seq and snd_una but
// not bytes_sent and bytes_acked, without which an MPTCP socket's unsent
// bytes cannot be told from those in flight.
type mptcpDiag struct {
	local, remote netip.AddrPort
	// rqueue and wqueue are inet_diag_msg's idiag_rqueue and idiag_wqueue.
	rqueue, wqueue uint32
	// From struct mptcp_info: data sequence numbers and byte counters at
	// the connection level (bytesSent counts each byte once, as snd_nxt
	// passes it; bytesAcked, as snd_una does).
	writeSeq, sndUna, bytesSent, bytesAcked uint64
}

// unsent is write_seq - snd_nxt: the bytes written that no subflow has
// sent yet; snd_nxt - snd_una is bytes_sent - bytes_acked.
func (d mptcpDiag) unsent() int64 {
	return int64(d.writeSeq-d.sndUna) - int64(d.bytesSent-d.bytesAcked)
}

// Constants of linux/inet_diag.h and linux/sock_diag.h.
const (
	sockDiagByFamily     = 20 // SOCK_DIAG_BY_FAMILY
	inetDiagInfo         = 2  // INET_DIAG_INFO
	inetDiagReqProtocol  = 3  // INET_DIAG_REQ_PROTOCOL
	sizeofInetDiagReqV2  = 56
	sizeofInetDiagMsg    = 72
	sizeofMPTCPInfoBytes = 80 // through mptcpi_bytes_acked (Linux 6.5)
)

// mptcpSockets dumps the established MPTCP sockets of both families in
// the calling thread's network namespace.
func mptcpSockets() ([]mptcpDiag, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	var all []mptcpDiag
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		req := make([]byte, unix.SizeofNlMsghdr+sizeofInetDiagReqV2+8)
		ne := binary.NativeEndian
		ne.PutUint32(req[0:], uint32(len(req)))
		ne.PutUint16(req[4:], sockDiagByFamily)
		ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
		ne.PutUint32(req[8:], 1)
		r := req[unix.SizeofNlMsghdr:]
		r[0] = family
		r[1] = unix.IPPROTO_TCP // the u8 field; the attribute below says MPTCP
		r[2] = 1 << (inetDiagInfo - 1)
		ne.PutUint32(r[4:], 1<<unix.BPF_TCP_ESTABLISHED)
		a := r[sizeofInetDiagReqV2:]
		ne.PutUint16(a[0:], 8)
		ne.PutUint16(a[2:], inetDiagReqProtocol)
		ne.PutUint32(a[4:], unix.IPPROTO_MPTCP)
		if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return nil, fmt.Errorf("sock_diag request: %w", err)
		}
		socks, err := readMPTCPDump(fd)
		if err != nil {
			return nil, err
		}
		all = append(all, socks...)
	}
	return all, nil
}

// readMPTCPDump reads one dump's answers up to NLMSG_DONE.
func readMPTCPDump(fd int) ([]mptcpDiag, error) {
	var socks []mptcpDiag
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("sock_diag answer: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("sock_diag answer: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return socks, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
						return nil, fmt.Errorf("sock_diag: %w", syscall.Errno(-errno))
					}
				}
				continue
			}
			d, err := parseMPTCPDiag(m.Data)
			if err != nil {
				return nil, err
			}
			socks = append(socks, d)
		}
	}
}

// parseMPTCPDiag reads an inet_diag_msg and its INET_DIAG_INFO, a struct
// mptcp_info.
func parseMPTCPDiag(b []byte) (mptcpDiag, error) {
	var d mptcpDiag
	if len(b) < sizeofInetDiagMsg {
		return d, fmt.Errorf("sock_diag: a message of %d bytes", len(b))
	}
	ne := binary.NativeEndian
	addr := func(a []byte) netip.Addr {
		if b[0] == unix.AF_INET {
			return netip.AddrFrom4([4]byte(a[:4]))
		}
		return netip.AddrFrom16([16]byte(a[:16])).Unmap()
	}
	d.local = netip.AddrPortFrom(addr(b[8:24]), binary.BigEndian.Uint16(b[4:]))
	d.remote = netip.AddrPortFrom(addr(b[24:40]), binary.BigEndian.Uint16(b[6:]))
	d.rqueue, d.wqueue = ne.Uint32(b[56:]), ne.Uint32(b[60:])
	found := false
	for a := b[sizeofInetDiagMsg:]; len(a) >= 4; {
		l, typ := int(ne.Uint16(a[0:])), ne.Uint16(a[2:])
		if l < 4 || l > len(a) {
			break
		}
		if v := a[4:l]; typ == inetDiagInfo {
			if len(v) < sizeofMPTCPInfoBytes {
				return d, fmt.Errorf("sock_diag: mptcp_info of %d bytes, want %d (Linux 6.5 or later)", len(v), sizeofMPTCPInfoBytes)
			}
			d.writeSeq, d.sndUna = ne.Uint64(v[16:]), ne.Uint64(v[24:])
			d.bytesSent, d.bytesAcked = ne.Uint64(v[56:]), ne.Uint64(v[72:])
			found = true
		}
		a = a[(l+3)&^3:]
	}
	if !found {
		return d, fmt.Errorf("sock_diag: %v->%v without INET_DIAG_INFO", d.local, d.remote)
	}
	return d, nil
}
