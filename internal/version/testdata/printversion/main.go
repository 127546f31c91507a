// Command printversion prints version.Get, for TestLdflags.
package main

import (
	"fmt"

	"github.com/braid-router/braid/internal/version"
)

func main() { fmt.Println(version.Get()) }
