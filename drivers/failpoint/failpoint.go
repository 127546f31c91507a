// Package failpoint lets tests crash braid in the middle of an apply: with
// BRAID_FAILPOINT_WRITES=N in the environment, the process exits right after
// its Nth kernel write, as if it had been killed there.
package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
)

// Env is the environment variable that arms the failpoint.
const Env = "BRAID_FAILPOINT_WRITES"

// RefuseNftablesEnv, set to 1, makes the nftables driver add, to its
// first transaction, a rule jumping to a chain that does not exist, so
// that the kernel refuses the whole transaction: tests use it to check
// that the rest of the run is restored.
const RefuseNftablesEnv = "BRAID_FAILPOINT_NFT_REFUSE"

// ExitCode is the status the process exits with when the failpoint fires.
const ExitCode = 86

// Counter counts kernel writes. The zero value counts without ever firing.
type Counter struct {
	limit int64
	n     atomic.Int64
	exit  func(int)
	// refuseNft is set while the nftables refusal is armed.
	refuseNft atomic.Bool
}

// FromEnv returns a counter armed from Env, or an unarmed one.
func FromEnv() (*Counter, error) {
	c := &Counter{exit: os.Exit}
	c.refuseNft.Store(os.Getenv(RefuseNftablesEnv) == "1")
	v := os.Getenv(Env)
	if v == "" {
		return c, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("%s=%q: want a positive number of writes", Env, v)
	}
	c.limit = n
	return c, nil
}

// Wrote counts one kernel write that took effect, and ends the process if
// it was the armed one.
func (c *Counter) Wrote() {
	if c == nil {
		return
	}
	n := c.n.Add(1)
	if c.limit > 0 && n == c.limit {
		fmt.Fprintf(os.Stderr, "braid: failpoint %s=%d reached, exiting\n", Env, c.limit)
		exit := c.exit
		if exit == nil {
			exit = os.Exit
		}
		exit(ExitCode)
	}
}

// Count is the number of writes counted so far.
func (c *Counter) Count() int64 {
	if c == nil {
		return 0
	}
	return c.n.Load()
}

// RefuseNftables reports, once, whether the nftables transaction about to
// be sent must be refused (RefuseNftablesEnv).
func (c *Counter) RefuseNftables() bool {
	return c != nil && c.refuseNft.Swap(false)
}
