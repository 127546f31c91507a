#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a short time each ($1, e.g.
# 10s). New fuzz targets are found automatically.
#
# Go 1.26's fuzzing coordinator can fail a target with a bare "context
# deadline exceeded" when -fuzztime runs out while a worker is busy (a
# race fixed in Go 1.27: go.dev/issue/75804), which a loaded machine
# meets now and then. Such a failure wrote no failing input; the target
# is run once more, and only a second failure counts. Any failure that
# found an input counts at once.
set -euo pipefail
time=${1:-10s}
status=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# fuzz PKG TARGET: one run, its output shown and kept in $out.
fuzz() { go test -run '^$' -fuzz "^$2\$" -fuzztime "$time" "$1" 2>&1 | tee "$out"; return "${PIPESTATUS[0]}"; }
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz: $pkg $target for $time"
		fuzz "$pkg" "$target" && continue
		if grep -q '^    context deadline exceeded$' "$out" && ! grep -q 'Failing input written' "$out"; then
			echo "fuzz: $target: the coordinator's deadline race (go.dev/issue/75804), no input found; once more"
			fuzz "$pkg" "$target" && continue
		fi
		status=1
	done
done
exit $status
