#!/bin/sh
# Runs one fuzz target the way fuzz/README.md records it: one process at the lowest priority,
# 10 million executions by default, inputs capped at a size that suits the target.
#   fuzz/run.sh TARGET [RUNS]
set -eu
cd "$(dirname "$0")"
target=$1
runs=${2:-10000000}
case $target in
    binary) max_len=65536 ;;
    *) max_len=16384 ;;
esac
mkdir -p "corpus/$target" logs
exec nice -n 19 cargo +nightly fuzz run -O -a -s none "$target" "corpus/$target" "seeds/$target" -- \
    -max_len="$max_len" -runs="$runs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    2>&1 | tee "logs/$target.log"
