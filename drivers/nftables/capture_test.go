package nftables

import (
	"bytes"
	"testing"

	gnft "github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// braid builds its production batches through google/nftables'
// WithTestDial hook (apply.go: newTx), which hands over the messages a
// Flush would send, so that braid can send them itself and name the change
// the kernel refused. The hook is documented for tests: an upgrade of the
// library may change it. This test fails loudly if it stops delivering
// the messages, before any kernel test would fail in a confusing way.
func TestTestDialHookStillCapturesTheBatch(t *testing.T) {
	tx, err := newTx()
	if err != nil {
		t.Fatalf("google/nftables' WithTestDial no longer builds a capturing connection (see newTx in apply.go): %v", err)
	}
	table := &gnft.Table{Family: gnft.TableFamilyINet, Name: TableName}
	if err := tx.emit(0, func(c *gnft.Conn) error { c.AddTable(table); return nil }); err != nil {
		t.Fatalf("google/nftables' WithTestDial hook changed (see newTx in apply.go): Flush: %v", err)
	}
	if len(tx.msgs) != 1 {
		t.Fatalf("google/nftables' WithTestDial hook changed (see newTx in apply.go): captured %d messages for one table, want 1", len(tx.msgs))
	}
	m := tx.msgs[0]
	if typ := m.Header.Type & 0xff; typ != unix.NFT_MSG_NEWTABLE {
		t.Errorf("captured message type %d, want NFT_MSG_NEWTABLE (%d)", typ, unix.NFT_MSG_NEWTABLE)
	}
	if !bytes.Contains(m.Data, []byte(TableName+"\x00")) {
		t.Errorf("the captured message does not name the table %q: % x", TableName, m.Data)
	}
	if tx.owner[0] != 0 {
		t.Errorf("the message is not attributed to its change: owner %d", tx.owner[0])
	}
}
