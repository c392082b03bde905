#!/usr/bin/env bash
# Mutation testing of the numeric core (docs/testing.md): mutmut mutates the modules listed under
# [tool.mutmut] in pyproject.toml, one small bug at a time, and runs the tests that reach each one.
# Hours on 2 cores for the ~10,000 mutants of the selection (about 1 mutant a second was measured on a
# loaded machine, 2026-12-02); not part of .ci/run.
#
#   scripts/mutation.sh                        # a full run from scratch (deletes mutants/)
#   scripts/mutation.sh 'ssd_eval.reports.gate*'   # from scratch, only the mutants whose names match
#   scripts/mutation.sh --again                # keep mutants/: re-test the survivors of the last run and
#                                              # every mutant of a function that changed since (mutmut
#                                              # re-tests those by itself); killed mutants stay killed
#
# Needs `pip install -e ".[dev]"` (mutmut >= 3.3). MUTMUT_CHILDREN sets the parallel workers (default 2),
# MUTMUT the mutmut executable. The score and the survivors are printed at the end and kept in
# mutants/results.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
# mutmut copies the project to mutants/ and imports ssd_eval from there: nothing may point elsewhere.
unset PYTHONPATH
mutmut="${MUTMUT:-mutmut}"
children="${MUTMUT_CHILDREN:-2}"

if [[ "${1:-}" == "--again" ]]; then
    [[ -f mutants/results.txt ]] || { echo "no earlier run in mutants/: run scripts/mutation.sh first" >&2; exit 2; }
    mapfile -t again < <(grep -E ': (survived|no tests|timeout|suspicious)$' mutants/results.txt | sed 's/^ *//; s/: .*$//')
    nice -n 10 "$mutmut" run --max-children "$children" || true  # changed functions, new mutants
    if ((${#again[@]})); then
        nice -n 10 "$mutmut" run --max-children "$children" "${again[@]}" || true
    fi
else
    rm -rf mutants
    # configs/ is a link to ssd_eval/configs in the repository: the copy must be one too, or the
    # bundled configs' relative paths (../baselines/...) resolve elsewhere.
    mkdir -p mutants && ln -s ssd_eval/configs mutants/configs
    nice -n 10 "$mutmut" run --max-children "$children" "$@" || true
fi
"$mutmut" results --all true > mutants/results.txt || true
total=$(grep -c ': ' mutants/results.txt || true)
killed=$(grep -c ': killed$' mutants/results.txt || true)
checked=$((total - $(grep -c ': not checked$' mutants/results.txt || true)))
echo "$(date -u '+%Y-%m-%d %H:%M UTC'): killed $killed of $checked mutants checked ($total generated)"
grep -E ': (survived|no tests|timeout|suspicious)$' mutants/results.txt || true
python3 - <<'EOF' mutants/results.txt
import collections, re, sys
by = collections.defaultdict(collections.Counter)
for line in open(sys.argv[1]):
    m = re.match(r"\s*(ssd_eval\.[\w.]+?)\.x.*?: (.+)$", line.strip())
    if m:
        by[m.group(1)][m.group(2)] += 1
print(f"{'module':45} {'killed':>7} {'checked':>8} {'score':>7}")
for module, c in sorted(by.items()):
    checked = sum(v for k, v in c.items() if k != "not checked")
    if checked:
        print(f"{module:45} {c['killed']:7d} {checked:8d} {100 * c['killed'] / checked:6.1f}%")
EOF
