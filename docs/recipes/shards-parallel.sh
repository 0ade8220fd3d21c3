#!/bin/sh
# Sweep the targets in N shards at once with GNU parallel, then merge them.
# Usage: N=4 OUT=results shards-parallel.sh [OPTION]... TARGET...
set -u
N=${N:-4}
OUT=${OUT:-.}
# {#} is the job's number, 1 to N: job k sweeps shard k/N. A shard with no
# Xen machine exits 1; one that fails leaves no file. merge judges: it
# names every shard that is missing or did not complete.
parallel --will-cite -j "$N" \
  xendiscover --shard "{#}/$N" -f jsonl -o "$OUT/shard-{#}.jsonl" "$@" ::: $(seq "$N")
xendiscover merge -f json -o "$OUT/all.json" $(seq -f "$OUT/shard-%g.jsonl" "$N")
