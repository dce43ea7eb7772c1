#!/usr/bin/env bash
# The GPU work of issue 14 in a few device calls. Usage (from the repository root):
#
#   bash benchmarks/gpu/run_all.sh 1       env check + CUDA test suite + throughput + protocol smoke on the GPU
#                                          + full-size step timings (estimate.json), ~3 min
#   bash benchmarks/gpu/run_all.sh 23      part 2 (ResNet-18 teacher + paper student) and part 3 (recommended
#                                          student, seeds 1-2 as time allows) in one call; BUDGET_S (default 420)
#   bash benchmarks/gpu/run_all.sh 2       part 2 alone (BUDGET_S default 330); teacher shards -> data/teacher and $OUT
#   bash benchmarks/gpu/run_all.sh t23     the CUDA tests, then parts 2 and 3 (one call after a part-1 call that found fixes)
#   bash benchmarks/gpu/run_all.sh 3       part 3 alone with the teacher shards of part 2 in data/teacher (BUDGET_S 240)
#   bash benchmarks/gpu/run_all.sh smoke   every script on a tiny setting on this machine (CPU is fine, < 3 min)
#
# Results go to $OUT (the device tool's output folder) or outputs/gpu/<part>: JSON + Markdown
# tables for benchmarks/RESULTS.md and a log. Data: ./data/fashion-mnist/*.gz (see README.md).
set -uo pipefail
part="${1:-}"
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
sm=""; [ "${SMOKE:-0}" = 1 ] && sm="--smoke"   # SMOKE=1: parts 1/2/3/23 on their tiny setting (checks the flow on a CPU)
out="${OUT:-outputs/gpu/$part}"
mkdir -p "$out"
log="$out/run_$part.log"
rc=0
step() {  # step NAME TIMEOUT_S CMD...: run, log, remember a failure, carry on
  local name="$1" limit="$2"; shift 2
  echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*" | tee -a "$log"
  timeout --signal=TERM --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log"
  local r=${PIPESTATUS[0]}
  echo "=== $name: exit $r" | tee -a "$log"
  [ "$r" -eq 0 ] || rc=1
}
case "$part" in
  1)
    step env 40 "$PY" benchmarks/gpu/env_check.py --out "$out"
    step cuda-tests 150 "$PY" -m pytest -q -p no:cacheprovider -rs tests/cuda --ignore=tests/cuda/test_gpu_scripts_smoke.py \
         --junitxml="$out/cuda_tests.xml"
    step throughput 120 "$PY" benchmarks/gpu/throughput.py $sm --out "$out"
    step protocol-smoke 70 "$PY" benchmarks/gpu/protocol.py --smoke --parts 2 3 --seeds --budget-s 45 \
         --out /tmp/gpu_protocol_smoke --teacher-dir /tmp/gpu_protocol_smoke/teacher
    cp /tmp/gpu_protocol_smoke/protocol.md "$out/protocol_smoke.md" 2>/dev/null
    step estimate 60 "$PY" benchmarks/gpu/protocol.py --estimate $sm --budget-s "${BUDGET_S:-420}" --out "$out"
    ;;
  2|3|23|t23)
    ls data/fashion-mnist/*.gz >/dev/null 2>&1 || echo "WARNING: data/fashion-mnist/*.gz missing (carry data)" | tee -a "$log"
    if [ "$part" = t23 ]; then   # the CUDA test suite again (after fixes), then parts 2 and 3 in the same call
      step cuda-tests 90 "$PY" -m pytest -q -p no:cacheprovider -rs tests/cuda --ignore=tests/cuda/test_gpu_scripts_smoke.py \
           --junitxml="$out/cuda_tests.xml"
    fi
    case "$part" in 2) b="${BUDGET_S:-330}"; parts="2";; 3) b="${BUDGET_S:-240}"; parts="3";; *) b="${BUDGET_S:-420}"; parts="2 3";; esac
    # SEEDS: the extra seeds of part 3 (default "1 2"; SEEDS= runs seed 0 alone, with more epochs)
    # shellcheck disable=SC2086
    step protocol $((${b%.*} + 90)) "$PY" benchmarks/gpu/protocol.py $sm --parts $parts --budget-s "$b" --out "$out" \
         --teacher-dir data/teacher --seeds ${SEEDS-1 2}
    ;;
  smoke)
    step env 40 "$PY" benchmarks/gpu/env_check.py --out "$out"
    step throughput 120 "$PY" benchmarks/gpu/throughput.py --smoke --threads 1 --out "$out"
    step protocol 150 "$PY" benchmarks/gpu/protocol.py --smoke --threads 1 --parts 2 3 --seeds 1 --budget-s 90 --out "$out" \
         --teacher-dir "$out/teacher"
    ;;
  *)
    echo "usage: bash benchmarks/gpu/run_all.sh {1|2|3|23|t23|smoke}" >&2; exit 2;;
esac
"$PY" benchmarks/gpu/report.py "$out" > "$out/results.md" 2>>"$log"
echo "=== done: $part, exit $rc; files in $out:" && ls -la "$out"
exit $rc
