//go:build braid_noprofile

package main

import (
	"fmt"
	"os"
)

// profileEnv names a file to write a CPU profile of the whole command to;
// this build (tag braid_noprofile, the router builds) has no profiler.
const profileEnv = "BRAID_CPUPROFILE"

// startProfile refuses BRAID_CPUPROFILE: runtime/pprof and its gzip
// writer weigh 0.13 MB of a router binary.
func startProfile() (stop func(), err error) {
	if os.Getenv(profileEnv) != "" {
		return nil, fmt.Errorf("%s: this braid was built without the profiler (build tag braid_noprofile)", profileEnv)
	}
	return func() {}, nil
}
