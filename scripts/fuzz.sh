#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a short time each ($1, e.g.
# 10s). New fuzz targets are found automatically.
set -euo pipefail
time=${1:-10s}
status=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz: $pkg $target for $time"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$pkg"; then
			status=1
		fi
	done
done
exit $status
