#!/usr/bin/env bash
# make test's phases (its arguments: make targets), one after the other,
# stopping at the first that fails, with each phase's duration and the
# total printed against a budget of 45 minutes on a 2-core machine (over
# it, a warning: the machines are shared, and a slow run is no failure).
set -uo pipefail
budget=$((45 * 60))
times=()
total=0
report() {
	echo
	echo "make test: durations"
	for t in "${times[@]}"; do echo "  $t"; done
	printf '  %-10s %4dm%02ds (budget %dm)\n' total $((total / 60)) $((total % 60)) $((budget / 60))
	((total <= budget)) || echo "make test: warning: over the budget of $((budget / 60)) minutes"
}
for p in "$@"; do
	start=$SECONDS
	echo "make test: make $p"
	rc=0
	make --no-print-directory "$p" || rc=$?
	d=$((SECONDS - start))
	total=$((total + d))
	times+=("$(printf '%-10s %4dm%02ds' "$p" $((d / 60)) $((d % 60)))")
	if ((rc != 0)); then
		report
		echo "make test: make $p failed"
		exit "$rc"
	fi
done
report
