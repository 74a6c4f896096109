# Stages of a long command that must all run: `stage NAME COMMAND...` runs one
# and records its result, `skip NAME WHY` records one that cannot run, and
# `summary` prints every result and fails if any stage did not pass.
# Sourced by scripts/test (and tested by tests/e2e/test_test_command.py).

results=()
failures=0

step() { printf '\n==> %s\n' "$*"; }

stage() {
    local name="$1"
    shift
    step "$name"
    local started=$SECONDS
    if "$@"; then
        results+=("ok       $name ($((SECONDS - started)) s)")
        return 0
    fi
    results+=("FAILED   $name ($((SECONDS - started)) s)")
    failures=$((failures + 1))
    return 1
}

skip() {
    step "$1"
    echo "skipped: $2"
    results+=("SKIPPED  $1 ($2)")
    failures=$((failures + 1))
}

summary() {
    printf '\n==> Summary\n'
    printf '  %s\n' "${results[@]}"
    if [ "$failures" -gt 0 ]; then
        printf '%d stage(s) did not pass\n' "$failures"
        return 1
    fi
    echo "all stages passed"
}

# The factor for the tests' waits: LAMBENT_TEST_TIMEOUT_SCALE if set, else
# one unit per CPU's worth of load already on the machine, from 1 to 8.
# (`timeout_scale LOAD CPUS` computes it for given figures.)
timeout_scale() {
    if [ -n "${LAMBENT_TEST_TIMEOUT_SCALE:-}" ]; then
        echo "$LAMBENT_TEST_TIMEOUT_SCALE"
        return
    fi
    local load="${1:-}" cpus="${2:-}"
    [ -n "$load" ] || load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
    [ -n "$cpus" ] || cpus=$(nproc 2>/dev/null || echo 1)
    awk -v l="$load" -v c="$cpus" 'BEGIN { s = int(l / c + 0.999); if (s < 1) s = 1; if (s > 8) s = 8; print s }'
}
