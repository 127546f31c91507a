package main

import (
	"log/slog"

	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dhcp4"
	"github.com/braid-router/braid/sessions/ra"
)

// sessionKinds is the registry of the session kinds this build of braid
// runs. A session the desired state names whose kind is not registered
// shows as "unavailable" in `braid status`, and its section's note in
// every plan says it is not converged yet. A test build (-tags braidtest)
// adds stand-ins (see standins.go).
func sessionKinds(log *slog.Logger) *session.Registry {
	reg := &session.Registry{}
	session.Register(reg, dhcp4.Kind, func() session.Session[dhcp4.Config] { return &dhcp4.Client{} })
	session.Register(reg, ra.Kind, func() session.Session[ra.Config] { return &ra.Client{} })
	// Last: in a test build, stand-ins replace the kinds above.
	registerStandIns(reg, log)
	return reg
}
