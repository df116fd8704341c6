#!/usr/bin/env bash
# Fuzz every Go native fuzz target in gateway and api, one after another.
#
#   FUZZTIME=15s          time per target (any -fuzztime value; default 15s)
#   FUZZMINIMIZETIME=1s   cap on minimising each new corpus entry or crasher;
#                         Go's 60s default stalls the run on 64 KiB inputs
#
# Total fuzzing time is bounded by (number of targets) x FUZZTIME, plus
# compile time and Prosody start-up for api (its TestMain starts one; the
# fuzz targets do not use it). New interesting inputs go to Go's cache
# ($(go env GOCACHE)/fuzz); a failing input is written to the package's
# testdata/fuzz/<Target>/ and the script stops there with a non-zero exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime="${FUZZTIME:-15s}"
minimizetime="${FUZZMINIMIZETIME:-1s}"
packages=(gateway api)

logdir="$(mktemp -d "${TMPDIR:-/tmp}/xmppgw-fuzz.XXXXXX")"
trap 'rm -rf "$logdir"' EXIT

# summary LOG: "execs N (R/s), new corpus entries K, corpus T, Es" from the
# last progress line go test printed.
summary() {
	local line
	line="$(grep -E '^fuzz: elapsed: ' "$1" | tail -n 1 || true)"
	if [[ -z "$line" ]]; then
		echo "no progress reported"
		return
	fi
	sed -E 's/^fuzz: elapsed: ([0-9]+)s, execs: ([0-9]+) \([0-9]+\/sec\), new interesting: ([0-9]+) \(total: ([0-9]+)\).*$/\1 \2 \3 \4/' <<<"$line" |
		awk '{ rate = ($1 > 0) ? int($2 / $1) : $2;
		       printf "execs %d (%d/s), new corpus entries %d, corpus %d, %ds\n", $2, rate, $3, $4, $1 }'
}

total=0
for pkg in "${packages[@]}"; do
	# Fails (and so stops the script) if the package does not build.
	listing="$(go test -list '^Fuzz' "./${pkg}")"
	mapfile -t targets < <(grep -E '^Fuzz[A-Za-z0-9_]*$' <<<"$listing" || true)
	if [[ ${#targets[@]} -eq 0 ]]; then
		echo "fuzz: no Fuzz targets in ./${pkg}" >&2
		exit 1
	fi
	for name in "${targets[@]}"; do
		log="${logdir}/${pkg}-${name}.log"
		total=$((total + 1))
		if go test -run='^$' -fuzz="^${name}\$" -fuzztime="${fuzztime}" -fuzzminimizetime="${minimizetime}" \
			"./${pkg}" >"$log" 2>&1; then
			printf 'ok    %-8s %-22s %s\n' "$pkg" "$name" "$(summary "$log")"
			continue
		fi
		# Go 1.26's fuzz coordinator can report its own -fuzztime deadline as a
		# failure when a worker is mid-call at the boundary (golang/go#75804,
		# fixed in Go 1.27): a bare "context deadline exceeded" with no failing
		# input. That is not a finding; say so and go on.
		if ! grep -q 'Failing input written to' "$log" &&
			! grep -qE -- "--- FAIL: ${name}/" "$log" &&
			[[ "$(grep -cvE '^(fuzz: |--- FAIL: |[[:space:]]*context deadline exceeded$|FAIL|exit status 1$|ok )' "$log")" -eq 0 ]] &&
			grep -qE '^[[:space:]]+context deadline exceeded$' "$log"; then
			printf 'ok    %-8s %-22s %s (go#75804 deadline race at the end, no failing input)\n' \
				"$pkg" "$name" "$(summary "$log")"
			continue
		fi
		printf 'FAIL  %-8s %-22s %s\n' "$pkg" "$name" "$(summary "$log")"
		echo "---- go test output (last 40 lines) ----"
		tail -n 40 "$log" | cut -c1-400
		echo "----"
		written="$(sed -nE 's/^[[:space:]]*Failing input written to (.*)$/\1/p' "$log" | tail -n 1)"
		if [[ -n "$written" ]]; then
			echo "fuzz: failing input written to ${pkg}/${written}"
			echo "fuzz: reproduce with: go test -run='^${name}/$(basename "$written")\$' ./${pkg}"
		else
			sub="$(grep -oE -- "(--- FAIL: |seed corpus entry: )${name}/[^ ]+" "$log" | head -n 1 | sed -E "s|^.*${name}/||" || true)"
			if [[ -n "$sub" && -f "${pkg}/testdata/fuzz/${name}/${sub}" ]]; then
				echo "fuzz: fails on the checked-in corpus file ${pkg}/testdata/fuzz/${name}/${sub}"
			elif [[ -n "$sub" ]]; then
				echo "fuzz: fails on seed ${sub} (an f.Add in ${pkg}/fuzz_test.go) or a cached entry in $(go env GOCACHE)/fuzz"
			elif ! grep -qE '^fuzz: ' "$log"; then
				echo "fuzz: failed before fuzzing (build or TestMain); see the output above"
			else
				echo "fuzz: failed without writing an input; see the output above"
			fi
			echo "fuzz: reproduce with: go test -run='^${name}\$' ./${pkg}"
		fi
		exit 1
	done
done
echo "fuzz: all ${total} targets passed (${fuzztime} each)"
