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

.PHONY: all build deps demo demo-down demo-ci test check unit fuzz bench clean cross deb packaging-test

all: build

deps:
	@bash scripts/deps.sh

# braid itself is one static binary.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/braid

# Bring the lab up and run braid in its box through the demo's fixed list
# of steps (scripts/demo.sh: lease, LAN DHCP, DNS, a delegated prefix, a
# download aggregated through braid's peer that survives isp1 failing,
# 6PE), each ok, failed or not built, then a summary; fails if any step
# failed or never reported.
demo: deps build
	@bash scripts/demo.sh $(BIN) $(LAB)

demo-down: build
	$(BIN) lab down --name $(LAB)

# The demo as `make test` runs it: bounded in time, in a lab of its own
# (a name no user's lab has), removed afterwards whatever the outcome.
DEMO_CI_LAB     ?= braid-ci-demo
DEMO_CI_TIMEOUT ?= 10m
demo-ci: build
	@rc=0; DEMO_CI=1 timeout -k 30s $(DEMO_CI_TIMEOUT) bash scripts/demo.sh $(BIN) $(DEMO_CI_LAB) || rc=$$?; \
	$(BIN) lab down --name $(DEMO_CI_LAB) || rc=1; \
	if [ $$rc -eq 124 ]; then echo "make demo-ci: the demo did not finish within $(DEMO_CI_TIMEOUT)"; fi; \
	exit $$rc

# Everything: formatting, vet, the whole suite with the race detector
# (root tests run against the real kernel in throwaway namespaces), the
# static builds, the demo (demo-ci), then every fuzz target briefly; one
# phase after the other, each one's duration printed, then the total
# against the budget (scripts/phases.sh).
TEST_PHASES := deps check unit cross demo-ci fuzz
test:
	@bash scripts/phases.sh $(TEST_PHASES)

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
