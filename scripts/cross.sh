#!/usr/bin/env bash
# Static, stripped builds of braid for the CPUs routers have, each checked
# against a size limit and smoke-run under qemu-user-static:
#
#   scripts/cross.sh LDFLAGS        (make cross)
#
# For each of amd64, arm64, armv7 and mipsle (softfloat) it builds the
# router build (build tags ROUTER_TAGS, what ships to a router) and the
# full build (no tags, the Debian package's), and prints both sizes. The
# router builds are smoke-run (braid version, braid validate of every
# example spec) under qemu-user-static and checked against the limits:
# above GOAL_MB (12) a warning, above MAX_MB (16) a failure. The full
# builds are built and measured only (the package test runs the amd64 one).
#
# Environment: ROUTER_TAGS (default: braid_nogit braid_nolab
# braid_noprofile, see README: Small static binaries), GOAL_MB, MAX_MB,
# OUT (bin/cross), JOBS (architectures built at once, default 2: a link is
# single-threaded, so two keep both cores busy).
# Exits 1 if a build, a smoke run or the hard limit fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ldflags=${1:-}
tags=${ROUTER_TAGS-braid_nogit braid_nolab braid_noprofile}
goal_mb=${GOAL_MB:-12}
max_mb=${MAX_MB:-16}
out=${OUT:-bin/cross}
jobs=${JOBS:-2}
mkdir -p "$out"
start=$SECONDS

# Code that runs once per spec load, command, control request or metrics
# scrape (the YAML parser, the spec's validation, the command line, the
# spec sources, the control socket, the metrics exposition and their HTTP)
# is compiled without inlining: 0.18 MiB less on mipsle, nothing on a hot
# path. Both builds use the same flags, so they share the build cache.
mod=github.com/braid-router/braid
gcflags=()
for p in go.yaml.in/yaml/... $mod/api/... $mod/cmd/braid github.com/spf13/... \
	$mod/source/... $mod/internal/control $mod/internal/metrics $mod/internal/minhttp; do
	gcflags+=("-gcflags=$p=-l")
done

# name GOARCH extra-environment qemu-binary
targets=(
	"amd64 amd64 - -"
	"arm64 arm64 - qemu-aarch64-static"
	"armv7 arm GOARM=7 qemu-arm-static"
	"mipsle mipsle GOMIPS=softfloat qemu-mipsel-static"
)

# one NAME GOARCH EXTRA QEMU: builds both, smoke-runs the router build,
# and writes its table row to $out/NAME.row (status ok, warn or fail).
one() {
	local name=$1 goarch=$2 extra=$3 qemu=$4
	local env=(CGO_ENABLED=0 GOOS=linux GOARCH="$goarch")
	[[ $extra != - ]] && env+=("$extra")
	local router=$out/braid-linux-$name full=$out/braid-full-linux-$name
	local status=ok note=
	if ! env "${env[@]}" go build -trimpath -tags "$tags" "${gcflags[@]}" -ldflags "-s -w $ldflags" -o "$router" ./cmd/braid; then
		echo "fail $name - - router build failed" >"$out/$name.row"
		return
	fi
	if ! env "${env[@]}" go build -trimpath "${gcflags[@]}" -ldflags "-s -w $ldflags" -o "$full" ./cmd/braid; then
		status=fail note="full build failed; "
	fi
	local run=()
	if [[ $qemu != - ]]; then
		if ! command -v "$qemu" >/dev/null; then
			echo "fail $name $(stat -c %s "$router") - $qemu is missing: run scripts/deps.sh (qemu-user-static)" >"$out/$name.row"
			return
		fi
		run=("$qemu")
	fi
	local v o
	if ! v=$("${run[@]}" "$router" version 2>&1) || [[ $v != "braid "* ]]; then
		status=fail note+="version failed: $v; "
	elif ! o=$("${run[@]}" "$router" validate specs/*.yaml $(compgen -G 'specs/*/*.yaml' || true) 2>&1); then
		status=fail note+="validate failed: $o; "
	else
		note+="smoke ok; "
	fi
	local bytes
	bytes=$(stat -c %s "$router")
	if ((bytes > max_mb * 1048576)); then
		status=fail note+="OVER THE ${max_mb} MiB LIMIT"
	elif ((bytes > goal_mb * 1048576)); then
		[[ $status == ok ]] && status=warn
		note+="over the ${goal_mb} MiB goal"
	fi
	local fbytes=-
	[[ -f $full ]] && fbytes=$(stat -c %s "$full")
	echo "$status $name $bytes $fbytes ${note%; }" >"$out/$name.row"
}

rm -f "$out"/*.row
running=0
for t in "${targets[@]}"; do
	read -r name goarch extra qemu <<<"$t"
	one "$name" "$goarch" "$extra" "$qemu" &
	if ((++running >= jobs)); then
		wait -n || true
		((running--))
	fi
done
wait

# What was measured heavy and left out of the router builds: a change that
# brings one back is named here, before its megabytes show in the table.
deps=$(go list -deps -tags "$tags" ./cmd/braid)
for p in net/http github.com/go-git/go-git/v5 $mod/lab runtime/pprof github.com/prometheus/client_golang/prometheus; do
	if grep -qx "$p" <<<"$deps"; then
		echo "cross: warning: the router build imports $p, measured heavy (README: Small static binaries)" >&2
	fi
done

mib() { [[ $1 == - ]] && echo - || awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
fail=0
printf '%-8s %12s %12s  %s\n' target 'router MiB' 'full MiB' 'router build'
for t in "${targets[@]}"; do
	read -r name _ <<<"$t"
	read -r status _ bytes fbytes note <"$out/$name.row" || { status=fail bytes=- fbytes=- note="no result"; }
	printf '%-8s %12s %12s  %s\n' "$name" "$(mib "$bytes")" "$(mib "$fbytes")" "$note"
	[[ $status == fail ]] && fail=1
	[[ $status == warn ]] && echo "cross: warning: $name's router build is over the ${goal_mb} MiB goal" >&2
	rm -f "$out/$name.row"
done
echo "cross: router tags \"$tags\"; goal $goal_mb MiB (a warning above), limit $max_mb MiB (a failure above); $((SECONDS - start)) s; binaries in $out"
exit $fail
