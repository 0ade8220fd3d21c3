#!/bin/bash
#SBATCH --job-name=xendiscover
#SBATCH --array=1-4
#SBATCH --output=xendiscover-%a.log
# One shard per array task:  sbatch slurm-array.sh [OPTION]... TARGET...
# then, when all are done:   sbatch --dependency=afterany:JOBID --wrap \
#                              "xendiscover merge -f json -o all.json shard-*.jsonl"
set -u
RESULTS=${RESULTS:-.}
# Task IDs run from SLURM_ARRAY_TASK_MIN; shards from 1 to SLURM_ARRAY_TASK_COUNT.
index=$((SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN + 1))
xendiscover --shard "$index/$SLURM_ARRAY_TASK_COUNT" -f jsonl \
  -o "$RESULTS/shard-$index.jsonl" "$@"
status=$?
[ "$status" -le 1 ]  # 1: no Xen machine in this shard, not a failure
