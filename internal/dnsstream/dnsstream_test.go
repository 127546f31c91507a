package dnsstream

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// header is a DNS header: ID 0xbeef, a query with one question.
var header = []byte{0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}

// TestRoundTrip: messages written one after the other are read back in
// order, each whole, then io.EOF.
func TestRoundTrip(t *testing.T) {
	long := append(append([]byte{}, header...), bytes.Repeat([]byte{'x'}, MaxLen-len(header))...)
	var buf bytes.Buffer
	for _, m := range [][]byte{header, long} {
		if err := Write(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	if got := buf.Bytes()[:2]; !bytes.Equal(got, []byte{0, 12}) {
		t.Errorf("length of a 12-octet message written as %x, want 000c", got)
	}
	for _, want := range [][]byte{header, long} {
		got, err := Read(&buf)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Read = %d octets, %v; want %d octets", len(got), err, len(want))
		}
	}
	if _, err := Read(&buf); err != io.EOF {
		t.Errorf("Read at the end = %v, want io.EOF", err)
	}
}

// TestErrors: what is not a whole message is an error that says so.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error // nil: any error
	}{
		{"half a length", []byte{0}, io.ErrUnexpectedEOF},
		{"cut message", append([]byte{0, 20}, header...), io.ErrUnexpectedEOF},
		{"length only", []byte{0, 12}, io.ErrUnexpectedEOF},
		{"shorter than a header", append([]byte{0, 11}, header[:11]...), nil},
		{"empty message", []byte{0, 0}, nil},
	} {
		_, err := Read(bytes.NewReader(tc.in))
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: Read = %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := Write(io.Discard, make([]byte, MaxLen+1)); !errors.Is(err, ErrTooLong) {
		t.Errorf("Write of %d octets = %v, want ErrTooLong", MaxLen+1, err)
	}
}
