#!/usr/bin/env bash
# Static, stripped builds of braid for the CPUs routers have, each checked
# against a size limit and smoke-run under qemu-user-static:
#
#   scripts/cross.sh LDFLAGS        (make cross)
#
# Environment: CROSS_TAGS, the build tags (default: the small build,
# without Git sources and Prometheus metrics, see README: Packaging; ""
# for a full build); MAX_MB, the limit (default 16); OUT (bin/cross).
# Prints a table of sizes; exits 1 if a build, a size or a smoke run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ldflags=${1:-}
tags=${CROSS_TAGS-braid_nometrics braid_nogit}
max_mb=${MAX_MB:-16}
out=${OUT:-bin/cross}
mkdir -p "$out"

# name GOARCH extra-environment qemu-binary
targets=(
	"amd64 amd64 - -"
	"arm64 arm64 - qemu-aarch64-static"
	"armv7 arm GOARM=7 qemu-arm-static"
	"mipsle mipsle GOMIPS=softfloat qemu-mipsel-static"
)

fail=0
printf '%-8s %10s %8s  %s\n' target bytes MB smoke
for t in "${targets[@]}"; do
	read -r name goarch extra qemu <<<"$t"
	bin=$out/braid-linux-$name
	env=(CGO_ENABLED=0 GOOS=linux GOARCH="$goarch")
	[[ $extra != - ]] && env+=("$extra")
	if ! env "${env[@]}" go build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$bin" ./cmd/braid; then
		echo "cross: $name: build failed" >&2
		fail=1
		continue
	fi
	bytes=$(stat -c %s "$bin")
	mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
	run=()
	if [[ $qemu != - ]]; then
		if ! command -v "$qemu" >/dev/null; then
			echo "cross: $qemu is missing: run scripts/deps.sh (qemu-user-static)" >&2
			fail=1
			continue
		fi
		run=("$qemu")
	fi
	smoke=ok
	if ! v=$("${run[@]}" "$bin" version 2>&1) || [[ $v != "braid "* ]]; then
		smoke="version failed: $v"
	elif ! o=$("${run[@]}" "$bin" validate specs/*.yaml $(compgen -G 'specs/*/*.yaml' || true) 2>&1); then
		smoke="validate failed: $o"
	fi
	[[ $smoke == ok ]] || fail=1
	if ((bytes > max_mb * 1048576)); then
		smoke="$smoke; OVER THE ${max_mb} MB LIMIT"
		fail=1
	fi
	printf '%-8s %10d %8s  %s\n' "$name" "$bytes" "$mb" "$smoke"
done
echo "cross: tags \"$tags\", limit $max_mb MB, binaries in $out"
exit $fail
