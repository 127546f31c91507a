//go:build !braidtest

package main

import (
	"log/slog"

	"github.com/braid-router/braid/session"
)

// registerStandIns does nothing outside test builds.
func registerStandIns(*session.Registry, *slog.Logger) {}
