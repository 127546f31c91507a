# braid: the two commands are `make demo` and `make test` (as root, on a
# Debian 12 machine with Go 1.26). Both install what they need first.

GO        ?= go
BIN       := bin/braid
LAB       ?= braid
FUZZTIME  ?= 10s
export PATH := /usr/local/go/bin:$(PATH)

# What `braid version` says: stamped in at link time, so a binary built
# from a tarball (no .git) still knows. Without a tag, describe gives the
# short commit.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
VPKG      := github.com/braid-router/braid/internal/version
LDFLAGS   := -X $(VPKG).version=$(VERSION) -X $(VPKG).commit=$(COMMIT)

.PHONY: all build deps demo demo-down test check unit fuzz bench clean cross deb packaging-test

all: build

deps:
	@bash scripts/deps.sh

# braid itself is one static binary.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/braid

# Bring the lab up, show the plan for specs/lab.yaml in its box, apply it,
# and prove the box reaches the Internet server out of each uplink; then
# braid run: uplinks tracked, a delegated prefix, and a LAN download
# aggregated over both uplinks through braid's peer (scripts/demo.sh).
demo: deps build
	@bash scripts/demo.sh $(BIN) $(LAB)

demo-down: build
	$(BIN) lab down --name $(LAB)

# Everything: formatting, vet, the whole suite with the race detector
# (root tests run against the real kernel in throwaway namespaces), then
# every fuzz target briefly.
test: deps check unit cross fuzz

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...

fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

bench: deps build
	$(GO) run ./bench -braid $(BIN)

# Static, stripped builds for the router CPUs braid targets (the router
# build and the full one for each), the router builds' sizes checked
# against GOAL_MB (a warning) and MAX_MB (a failure), and each smoke-run
# under qemu-user-static (scripts/cross.sh); part of `make test`.
cross: deps
	@bash scripts/cross.sh '$(LDFLAGS)'

# A Debian package of the static amd64 binary, the systemd unit, an
# example spec and a man page (scripts/deb.sh), in bin/.
deb: deps
	@bash scripts/deb.sh '$(LDFLAGS)' '$(VERSION)'

clean:
	rm -rf bin
