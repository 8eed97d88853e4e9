#!/bin/bash
# Slurm job template for asslsb-fem: one case on N MPI ranks, or a sweep as a job array.
#
#   sbatch scripts/slurm.sh cases/cathode_3d.toml                 # one case
#   sbatch --array=0-4 scripts/slurm.sh cases/sweep/*.toml          # one case per array task
#   sbatch --array=0-4 scripts/slurm.sh --list cases.txt            # the same, the cases listed in a file
#
# `asslsb-fem sweep SWEEP.toml --slurm` writes a sweep's member cases, their list and a submit.sh
# that calls this script with --list and OUT_ROOT set; `asslsb-fem gather DIR` then reads the
# members' folders. Each task runs into ${OUT_ROOT:-results}/<case file name without .toml>/; a
# task whose run fails leaves error.txt there (the run's one-line message), as the local pool does.
#
# Memory: a 3D run needs roughly 6-11 kB per solved dof with the direct solver (MUMPS), spread
# over the ranks; ask for --mem-per-cpu accordingly (1e6 dofs on 8 ranks: about 1.5 GB each).
# The install (make setup) must have been run once on a login node; the venv is .venv.
#SBATCH --job-name=asslsb-fem
#SBATCH --nodes=1
#SBATCH --ntasks=8
#SBATCH --cpus-per-task=1
#SBATCH --mem-per-cpu=2G
#SBATCH --time=04:00:00
#SBATCH --output=slurm-%x-%A_%a.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"

usage="usage: sbatch scripts/slurm.sh CASE.toml [CASE.toml ...] | --list CASES.txt"
if [ "${1:-}" = "--list" ]; then
    [ $# -eq 2 ] && [ -f "$2" ] || { echo "$usage (--list needs one file, one case path a line)" >&2; exit 2; }
    mapfile -t cases < <(grep -v '^[[:space:]]*$' "$2")
else
    cases=("$@")
fi
[ ${#cases[@]} -gt 0 ] || { echo "$usage" >&2; exit 2; }
task=${SLURM_ARRAY_TASK_ID:-0}
[ "$task" -lt ${#cases[@]} ] || { echo "array task $task: only ${#cases[@]} case(s) given" >&2; exit 2; }
case_file=${cases[$task]}
name=$(basename "$case_file" .toml)
out=${OUT_ROOT:-results}/$name

# one thread per rank: BLAS and OpenMP threads would compete with the MPI ranks for the cores
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# the JIT cache on a node-local or shared disk: rank 0 compiles, the others wait for it
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$HOME/.cache}

mkdir -p "$out"
rm -f "$out/error.txt"  # of an earlier, failed attempt
stderr_log=$(mktemp)
trap 'rm -f "$stderr_log"' EXIT
status=0
# stderr also goes to the job's output (through tee; stdout as it is); its last "error: " line
# becomes error.txt on failure
{ srun .venv/bin/python run_case.py "$case_file" --out "$out" 2>&1 1>&3 3>&- | tee "$stderr_log" >&2; } 3>&1 \
    || status=$?
if [ $status -ne 0 ]; then
    message=$(grep '^error: ' "$stderr_log" | tail -n 1 | sed 's/^error: //' || true)
    printf '%s\n(exit code %d; output in the job log, task %s)\n' "${message:-the run failed}" "$status" "$task" \
        > "$out/error.txt"
fi
exit $status
