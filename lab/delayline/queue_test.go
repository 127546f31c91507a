package delayline

import (
	"bytes"
	"fmt"
	"testing"
)

// fill commits a packet of n bytes, each byte b, due at due; it reports
// whether the queue took it.
func fill(q *Queue, n int, b byte, due int64) bool {
	buf := q.Reserve(n)
	if buf == nil {
		return false
	}
	copy(buf, bytes.Repeat([]byte{b}, n))
	q.Commit(buf, n, due)
	return true
}

func TestQueueOrderAndWrap(t *testing.T) {
	q := NewQueue(1000, 16)
	// Push and pop many more bytes than the ring holds, so that it wraps
	// many times; every packet comes out whole and in order.
	next, out := 0, 0
	for round := 0; round < 200; round++ {
		for fill(q, 100+next%150, byte(next), int64(next+1)) {
			next++
		}
		for i := 0; i < 1+round%3 && q.Len() > 0; i++ {
			pkt, due, ok := q.Peek()
			if !ok {
				t.Fatal("Peek on a queue of", q.Len())
			}
			if want := 100 + out%150; len(pkt) != want || due != int64(out+1) || !bytes.Equal(pkt, bytes.Repeat([]byte{byte(out)}, want)) {
				t.Fatalf("packet %d: %d bytes due %d, first %d; want %d bytes of %d due %d", out, len(pkt), due, pkt[0], want, byte(out), out+1)
			}
			q.Pop()
			out++
		}
	}
	if out < 300 {
		t.Fatalf("only %d packets went through", out)
	}
}

func TestQueueTailDrop(t *testing.T) {
	q := NewQueue(1000, 4)
	for i := range 4 {
		if !fill(q, 10, byte(i), 1) {
			t.Fatalf("packet %d refused by an empty enough queue", i)
		}
	}
	if fill(q, 10, 9, 1) {
		t.Fatal("a fifth packet went into a queue of 4 slots")
	}
	q.Pop()
	if !fill(q, 10, 9, 1) {
		t.Fatal("a slot freed by Pop was not reused")
	}
	q = NewQueue(1000, 16)
	if !fill(q, 600, 1, 1) || fill(q, 600, 2, 1) {
		t.Fatal("want the first 600-byte packet taken and the second dropped in 1000 bytes")
	}
	q.Pop()
	if !fill(q, 600, 3, 1) {
		t.Fatal("an emptied queue refused a packet")
	}
}

func TestQueueEmpty(t *testing.T) {
	q := NewQueue(100, 4)
	if _, _, ok := q.Peek(); ok {
		t.Fatal("Peek on an empty queue")
	}
	q.Pop() // no-op
	if q.Reserve(101) != nil {
		t.Fatal("reserved more than the ring")
	}
	if q.Reserve(100) == nil {
		t.Fatal("an empty ring refused its own size")
	}
}

// BenchmarkQueue is a packet's way through the queue: reserve a
// maximum-size buffer, commit a 1500-byte frame, peek and pop it.
func BenchmarkQueue(b *testing.B) {
	for _, backlog := range []int{0, 1000} {
		b.Run(fmt.Sprint("backlog=", backlog), func(b *testing.B) {
			q := NewQueue(QueueBytes, QueuePackets)
			for range backlog {
				fill(q, 1500, 0, 0)
			}
			b.ReportAllocs()
			b.SetBytes(1500)
			for i := 0; b.Loop(); i++ {
				buf := q.Reserve(MaxPacket)
				if buf == nil {
					b.Fatal("queue full")
				}
				q.Commit(buf, 1500, int64(i))
				if _, _, ok := q.Peek(); !ok {
					b.Fatal("empty")
				}
				q.Pop()
			}
		})
	}
}
