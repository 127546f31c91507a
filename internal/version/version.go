// Package version says which braid this is: the release and commit the
// Makefile stamps in with -ldflags -X, or else what the Go toolchain
// recorded from the checkout (runtime/debug.ReadBuildInfo), and the Go
// version it was built with.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time by the Makefile:
//
//	-ldflags "-X github.com/braid-router/braid/internal/version.version=v1.2.3
//	          -X github.com/braid-router/braid/internal/version.commit=abc123"
//
// Both stay empty in a plain `go build`, and Get falls back to the build
// information. They are variables only because -X can set nothing else;
// nothing writes them at run time.
var (
	version string
	commit  string
)

// Info describes a build.
type Info struct {
	// Version is the release ("v0.3.0", "v0.3.0-4-gabc1234-dirty" from
	// git describe), the module version for `go install`, or "devel".
	Version string `json:"version"`
	// Commit is the full commit hash, with "-dirty" when the tree had
	// uncommitted changes, or "" when nothing recorded it.
	Commit string `json:"commit"`
	// Go is the toolchain's version ("go1.26.8").
	Go string `json:"go"`
	// Platform is GOOS/GOARCH, with the GOARM or GOMIPS level when set.
	Platform string `json:"platform"`
}

// Get returns this binary's build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return from(version, commit, bi)
}

// from combines the link-time values with the build information (nil
// when the binary carries none).
func from(ver, com string, bi *debug.BuildInfo) Info {
	info := Info{Version: ver, Commit: com, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		if info.Version == "" {
			info.Version = "devel"
		}
		return info
	}
	info.Go = bi.GoVersion
	var revision, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		case "GOARM", "GOMIPS":
			info.Platform += " " + s.Key + "=" + s.Value
		}
	}
	if info.Commit == "" && revision != "" {
		info.Commit = revision
		if modified == "true" {
			info.Commit += "-dirty"
		}
	}
	if info.Version == "" {
		info.Version = bi.Main.Version
		if info.Version == "" || info.Version == "(devel)" {
			info.Version = "devel"
		}
	}
	return info
}

// String is the one line `braid version` prints.
func (i Info) String() string {
	commit := i.Commit
	if commit == "" {
		commit = "unknown"
	}
	return fmt.Sprintf("braid %s (commit %s, %s, %s)", i.Version, commit, i.Go, i.Platform)
}
