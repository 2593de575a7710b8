#!/usr/bin/env bash
# Alternating benchmark runs of two checkouts, on fresh databases, then their comparison:
#
#   bench/alternate.sh BEFORE_DIR AFTER_DIR RUNS SCENARIOS [OUT_DIR]
#   bench/alternate.sh ../main-old . 3 peers,latency,pipeline
#
# BEFORE_DIR and AFTER_DIR are checkouts (e.g. `git worktree add ../before <commit>`), each with
# its .venv (or a symlink to a shared one). For i in 1..RUNS it runs before, then after: each
# time a fresh database (createdb of "<DATABASE_URL's name>_alt", dropped afterwards), migrate,
# `manage.py bench --only SCENARIOS --out OUT_DIR/<before|after>`, so both see the same hour of
# a machine whose speed drifts. Then `python -m bench.compare OUT_DIR` prints a Markdown table
# per figure (each run, median and spread per side). Needs DATABASE_URL (PostgreSQL; its server
# is used, not its database), REDIS_URL and SECRET_KEY (50+ characters) in the environment, and
# createdb/dropdb on PATH. BENCH_EXTRA adds arguments to every `manage.py bench` (e.g. --quick).
# BEFORE_SCENARIOS replaces SCENARIOS for the before side, where it predates one of them (e.g.
# `peers`, whose ratios are taken within the after side's own runs).
set -euo pipefail

if [ $# -lt 4 ]; then
    echo "usage: $0 BEFORE_DIR AFTER_DIR RUNS SCENARIOS [OUT_DIR]" >&2
    exit 2
fi
before=$(cd "$1" && pwd)
after=$(cd "$2" && pwd)
runs=$3
scenarios=$4
out=${5:-$(pwd)/var/bench/alternate-$(date -u +%Y%m%d-%H%M%S)}
: "${DATABASE_URL:?set DATABASE_URL (postgres://...)}" "${REDIS_URL:?set REDIS_URL}" "${SECRET_KEY:?set SECRET_KEY}"
case "$runs" in '' | *[!0-9]*) echo "RUNS must be a number, not '$runs'" >&2; exit 2 ;; esac
for dir in "$before" "$after"; do
    [ -x "$dir/.venv/bin/python" ] || { echo "$dir has no .venv/bin/python" >&2; exit 2; }
done

# postgres://user[:password]@host:port/name -> the server's URL and an alternate database on it.
server=${DATABASE_URL%/*}
name=${DATABASE_URL##*/}
name=${name%%\?*}
scratch="${name}_alt"
admin_url="$server/postgres"
mkdir -p "$out"

one_run() {  # one_run LABEL CHECKOUT SCENARIOS
    local label=$1 dir=$2 scenarios=$3
    dropdb --if-exists --force "--maintenance-db=$admin_url" "$scratch"
    createdb "--maintenance-db=$admin_url" "$scratch"
    echo "== $label ($dir) on a fresh database $scratch: bench --only $scenarios" >&2
    (
        cd "$dir"
        export DATABASE_URL="$server/$scratch" DEBUG=false
        .venv/bin/python manage.py migrate -v0 >/dev/null
        DJANGO_SETTINGS_MODULE=config.settings_bench .venv/bin/python manage.py bench \
            --only "$scenarios" --out "$out/$label" ${BENCH_EXTRA:-}
    )
    dropdb --if-exists --force "--maintenance-db=$admin_url" "$scratch"
}

for i in $(seq 1 "$runs"); do
    one_run before "$before" "${BEFORE_SCENARIOS:-$scenarios}"
    one_run after "$after" "$scenarios"
done
here=$(cd "$(dirname "$0")/.." && pwd)  # this script's checkout: its compare.py
(cd "$here" && .venv/bin/python -m bench.compare "$out") | tee "$out/compare.md"
echo "comparison: $out/compare.md" >&2
