// Package recordtest gives drivers' tests a short form of what an
// ownership record holds, for their comparisons and failure messages.
package recordtest

import (
	"slices"

	"github.com/braid-router/braid/drivers/record"
)

// Entries lists the entries of rec of the given kinds as "KIND KEY",
// sorted.
func Entries(rec *record.Record, kinds ...string) []string {
	var out []string
	for _, kind := range kinds {
		for _, k := range rec.Keys(kind) {
			out = append(out, kind+" "+k)
		}
	}
	slices.Sort(out)
	return out
}
