#!/bin/bash
# Slurm job template for asslsb-fem: one case on N MPI ranks, or a sweep as a job array.
#
#   sbatch scripts/slurm.sh cases/cathode_3d.toml                 # one case
#   sbatch --array=0-4 scripts/slurm.sh cases/sweep/*.toml          # one case per array task
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

cases=("$@")
[ ${#cases[@]} -gt 0 ] || { echo "usage: sbatch scripts/slurm.sh CASE.toml [CASE.toml ...]" >&2; exit 2; }
case_file=${cases[${SLURM_ARRAY_TASK_ID:-0}]}
name=$(basename "$case_file" .toml)
out=${OUT_ROOT:-results}/$name

# one thread per rank: BLAS and OpenMP threads would compete with the MPI ranks for the cores
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# the JIT cache on a node-local or shared disk: rank 0 compiles, the others wait for it
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$HOME/.cache}

srun .venv/bin/python run_case.py "$case_file" --out "$out"
