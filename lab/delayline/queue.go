// Package delayline is the lab's userspace delay line: packets read from a
// TAP device are held for a fixed time and written back in order, as a
// link with a propagation delay and a bounded buffer would carry them.
// The kernel here has no netem; the lab steers a link's traffic into the
// TAP device and back with nftables (see lab.Delay).
package delayline

// Queue is a FIFO of packets, each held until a due time: a byte ring for
// their contents and a ring of slots describing them. Its memory is
// allocated once, by NewQueue; a packet that does not fit is refused (tail
// drop), as a full link buffer drops. Queue is not safe for concurrent use.
type Queue struct {
	buf   []byte
	slots []slot
	// first is the index of the oldest slot, n the number of slots in use.
	first, n int
	// r is where the oldest packet's bytes begin, w where the next
	// packet's go: w < r when the bytes wrap around the end of buf.
	// w == r only when the queue is empty.
	r, w int
}

// slot describes one packet in the byte ring.
type slot struct {
	off, len int
	due      int64
}

// NewQueue returns a queue holding at most size bytes of packets and at
// most packets packets.
func NewQueue(size, packets int) *Queue {
	return &Queue{buf: make([]byte, size), slots: make([]slot, packets)}
}

// Len returns the number of packets queued.
func (q *Queue) Len() int { return q.n }

// Reserve returns a buffer of max bytes in which to read the next packet,
// or nil when the queue has no room for a packet that large. Commit adds
// what was read; until then the buffer is not part of the queue.
func (q *Queue) Reserve(max int) []byte {
	if q.n == len(q.slots) {
		return nil
	}
	if q.n == 0 {
		q.r, q.w = 0, 0
	}
	if q.w >= q.r {
		if len(q.buf)-q.w >= max {
			return q.buf[q.w : q.w+max]
		}
		// Wrap, leaving the end of buf unused; w must stay below r.
		if q.r > max {
			return q.buf[:max]
		}
		return nil
	}
	if q.r-q.w > max {
		return q.buf[q.w : q.w+max]
	}
	return nil
}

// Commit adds the first n bytes of the buffer Reserve last returned as a
// packet due at due (any monotonic clock, in nanoseconds).
func (q *Queue) Commit(buf []byte, n int, due int64) {
	off := q.w
	if q.w >= q.r && len(q.buf)-q.w < len(buf) {
		off = 0 // Reserve wrapped
	}
	q.slots[(q.first+q.n)%len(q.slots)] = slot{off: off, len: n, due: due}
	q.n++
	q.w = off + n
}

// Peek returns the oldest packet and its due time; ok is false when the
// queue is empty. The packet stays valid until Pop.
func (q *Queue) Peek() (pkt []byte, due int64, ok bool) {
	if q.n == 0 {
		return nil, 0, false
	}
	s := q.slots[q.first]
	return q.buf[s.off : s.off+s.len], s.due, true
}

// Pop removes the oldest packet.
func (q *Queue) Pop() {
	if q.n == 0 {
		return
	}
	q.first = (q.first + 1) % len(q.slots)
	q.n--
	if q.n == 0 {
		q.r, q.w = 0, 0
		return
	}
	q.r = q.slots[q.first].off
}
