package dataplane

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is the kernel's struct mmsghdr: a message header and the length
// recvmmsg or sendmmsg reports for it, padded to the header's alignment.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

// Control message space: one int (UDP_GRO, received) or one uint16
// (UDP_SEGMENT, sent), with room to spare for a second message.
const controlLen = 64

// sendmmsg sends hdrs on fd, non-blocking, and returns how many messages
// went.
func sendmmsg(fd uintptr, hdrs []mmsghdr) (int, unix.Errno) {
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), unix.MSG_DONTWAIT, 0, 0)
	return int(r), errno
}

// recvmmsg receives up to len(hdrs) messages on fd, non-blocking, and
// returns how many came.
func recvmmsg(fd uintptr, hdrs []mmsghdr) (int, unix.Errno) {
	r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), unix.MSG_DONTWAIT, 0, 0)
	return int(r), errno
}

// putSegment writes a UDP_SEGMENT control message for segments of size
// octets into b, which must be controlLen long and 8-aligned, and returns
// its length.
func putSegment(b []byte, size uint16) int {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], size)
	return unix.CmsgSpace(2)
}

// groSize returns the segment size of a UDP_GRO control message in b, the
// control messages of one received datagram, or 0 without one.
func groSize(b []byte) int {
	for len(b) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(b) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(4) {
			return int(int32(binary.NativeEndian.Uint32(b[unix.CmsgLen(0):])))
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next > len(b) {
			return 0
		}
		b = b[next:]
	}
	return 0
}
