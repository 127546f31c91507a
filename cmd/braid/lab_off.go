//go:build braid_nolab

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newLabCmd stands for `braid lab` in the router builds (build tag
// braid_nolab): the lab is for a development machine, and weighs 0.5 MB.
func newLabCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "lab",
		Short:  "Not built: this braid was built for a router, without the lab",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("this braid was built without the lab (build tag braid_nolab): use a full build (make build)")
		},
		DisableFlagParsing: true,
	}
}
