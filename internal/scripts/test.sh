#!/usr/bin/env bash
# Installs what ntpkit's tests need (Debian packages, when missing and run
# as root) and runs every check CI runs: gofmt, go vet, the race-enabled
# test suite with the real-client interop tests, the allocation tests
# (which the race detector would distort) and short fuzz runs.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
command -v chronyd >/dev/null 2>&1 || missing+=(chrony)
command -v ntpdig >/dev/null 2>&1 || missing+=(ntpsec-ntpdig)
# promtool (the reference parser for /metrics); the package's service is
# never started: the policy-rc.d below refuses it.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if ((${#missing[@]})); then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "installing ${missing[*]}"
		# Never let a package install start chronyd (or prometheus) as a
		# system service with Debian's default config (internet pools, clock
		# steering): make sure a policy-rc.d refuses service starts while we
		# install.
		created_policy=
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
			chmod 755 /usr/sbin/policy-rc.d
			created_policy=1
		fi
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
		[ -n "$created_policy" ] && rm -f /usr/sbin/policy-rc.d
	else
		echo "missing ${missing[*]}: install them as root (apt-get install ${missing[*]})" >&2
		[ -n "${CI:-}" ] && exit 1
	fi
fi

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then
	echo "gofmt would change:" >&2
	echo "$bad" >&2
	exit 1
fi

echo "== go vet"
go vet ./...

# server/metrics/prom is a module of its own (it requires the Prometheus
# client, which the core module must not), so ./... above skips it; gofmt
# above covers it (git ls-files lists every module's files).
echo "== go vet and go test in the nested module server/metrics/prom"
(cd server/metrics/prom && go vet ./... && go test -count=1 ./...)

echo "== go build (this platform, then cross-builds)"
go build ./...
for target in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64 freebsd/amd64 freebsd/arm64; do
	echo "-- $target"
	GOOS=${target%/*} GOARCH=${target#*/} go build ./...
done
# go vet type-checks the tests too, which the builds above do not.
for target in darwin/amd64 windows/amd64; do
	echo "-- go vet $target"
	GOOS=${target%/*} GOARCH=${target#*/} go vet ./...
done

echo "== allocation and send-path timing tests without the race detector"
go test -count=1 -run 'Alloc|TestCalibratedTransmitTimes' ./...

echo "== short fuzz runs"
# Each target's output is kept; on a failure it is printed whole, with the
# failing input the fuzzer wrote under testdata/fuzz, so a CI log alone
# tells what broke and how to reproduce it.
#
# The budget is a count of executions, not a duration: with a duration,
# Go 1.26's fuzz coordinator can report "context deadline exceeded" as a
# failure when the deadline lands while a worker is mid-call on a loaded
# machine (go.dev/issue/75804, fixed in Go 1.27), with no failing input.
# A count has no deadline to race. FUZZ_TIME may still be a duration.
fuzz_time=${FUZZ_TIME:-50000x}
fuzz_log=$(mktemp)
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "-- $pkg $target ($fuzz_time)"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzz_time" -fuzzminimizetime 500x "$pkg" >"$fuzz_log" 2>&1; then
			echo "FAIL: fuzz target $target in $pkg" >&2
			cat "$fuzz_log" >&2
			for f in $(cd "$dir" && git ls-files --others --exclude-standard "testdata/fuzz/$target" 2>/dev/null); do
				echo "-- new failing input $dir/$f:" >&2
				cat "$dir/$f" >&2
			done
			rm -f "$fuzz_log"
			exit 1
		fi
	done
done
rm -f "$fuzz_log"

echo "== go test -race (unit, interop, end-to-end)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
go test -race -count=1 -timeout 20m -v ./... >"$log" 2>&1 || status=$?
# Package results, and the details of any failure (the full -v log is long).
grep -E '^(ok|FAIL|panic:)' "$log" || true
if [ "$status" -ne 0 ]; then
	grep -E -A40 '^\s*--- FAIL|^panic:' "$log" | head -400 || true
fi
passed=$(grep -cE '^\s*--- PASS' "$log" || true)
failed=$(grep -cE '^\s*--- FAIL' "$log" || true)
skipped=$(grep -cE '^\s*--- SKIP' "$log" || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
	tail -50 "$log" # a build failure or panic: show what happened
	failed=1
fi
if [ "$skipped" -gt 0 ]; then
	echo "skipped (with the reason each gave):"
	grep -E -B1 '^\s*--- SKIP' "$log" | grep -vE '^(--|=== RUN.*)$' || true
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
