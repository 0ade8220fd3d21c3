#!/bin/sh
# The same with xargs -P (no GNU parallel): job k of N sweeps shard k/N.
# Usage: N=4 OUT=results shards-xargs.sh [OPTION]... TARGET...
set -u
N=${N:-4}
OUT=${OUT:-.}
seq "$N" | xargs -P "$N" -I{} \
  xendiscover --shard "{}/$N" -f jsonl -o "$OUT/shard-{}.jsonl" "$@"
xendiscover merge -f json -o "$OUT/all.json" $(seq -f "$OUT/shard-%g.jsonl" "$N")
