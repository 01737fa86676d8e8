#!/bin/bash
# Run benchmarks one after the other (never side by side: they time each other), each
# logged to bench/logs/NAME.log, with start/end times and load averages in
# bench/logs/progress.log. Then `python bench/report.py` pastes the results.
#
#   bash bench/run.sh defaults libmf surprise_svd frontier serve coldstart contention
#
# Uses $PYTHON (default: python3); MFREC_DATA_DIR must point at the MovieLens copies.
cd "$(dirname "$0")" || exit 1
PY=${PYTHON:-python3}
mkdir -p logs
run() {
  name=$1; shift
  echo "$(date +%T) start $name load $(cut -d' ' -f1-3 /proc/loadavg)" >> logs/progress.log
  "$PY" "$@" > "logs/$name.log" 2>&1
  echo "$(date +%T) end $name rc=$? load $(cut -d' ' -f1-3 /proc/loadavg)" >> logs/progress.log
}
for name in "$@"; do
  case $name in
    libmf) run libmf libmf.py --repeats 3 ;;
    frontier) run frontier frontier.py --repeats 1 ;;
    surprise_svdpp) run surprise_svdpp surprise_svdpp.py --repeats 2 ;;
    reliability) run reliability reliability.py --repeats 3 ;;
    spark_engine) run spark_engine spark_engine.py --sizes 1m,10m,50m --iters 5,5,3 ;;
    funk_start) run funk_start funk_start.py --seeds 3 ;;
    *)
      if [ -f "$name.py" ]; then run "$name" "$name.py"; else echo "no bench/$name.py" >&2; fi ;;
  esac
done
