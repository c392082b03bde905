#!/usr/bin/env bash
# Mutation testing of the numeric core (docs/testing.md): mutmut mutates the modules listed under
# [tool.mutmut] in pyproject.toml, one small bug at a time, and runs the tests that reach each one.
# Long (tens of minutes on 2 cores); not part of .ci/run.
#
#   scripts/mutation.sh                       # every listed module
#   scripts/mutation.sh 'ssd_eval.reports.gate*'   # only the mutants whose names match
#
# Needs `pip install -e ".[dev]"` (mutmut). MUTMUT_CHILDREN sets the parallel workers (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
# mutmut copies the project to mutants/ and imports ssd_eval from there: nothing may point elsewhere.
unset PYTHONPATH
mutmut="${MUTMUT:-mutmut}"
rm -rf mutants
nice -n 10 "$mutmut" run --max-children "${MUTMUT_CHILDREN:-2}" "$@" || true
"$mutmut" results --all true > mutants/results.txt || true
killed=$(grep -c ': killed$' mutants/results.txt || true)
total=$(grep -c ': ' mutants/results.txt || true)
echo "killed $killed of $total mutants; survivors: $(grep -v ': killed$' mutants/results.txt | grep -c ': ' || true)"
grep -v ': killed$' mutants/results.txt || true
