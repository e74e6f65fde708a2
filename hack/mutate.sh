#!/usr/bin/env bash
# make mutate: mutation testing of the core with mutmut 3, then docs/mutation.md.
#
#   bash hack/mutate.sh                 # every module (slow: tens of minutes on 2 cores)
#   bash hack/mutate.sh routing parser  # just these modules (names in hack/mutation.py)
#   MUTMUT_CHILDREN=2 bash hack/mutate.sh
#
# Each module is staged under .cache/mutmut/<module>/ (git-ignored) and judged by its fast
# unit tests only; results are cached there, so a re-run re-tests only changed functions.
# Not part of CI. Runs under `nice` so it yields the CPU to everything else.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export MUTMUT_CHILDREN=${MUTMUT_CHILDREN:-1}
rc=0
# mutmut redraws a spinner with \r; keep the log readable
nice -n 10 "$PY" hack/mutation.py run "$@" 2>&1 \
  | tr '\r' '\n' | grep --line-buffered -vE '^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]' || rc=$?
"$PY" hack/mutation.py report
exit "$rc"
