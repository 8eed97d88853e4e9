# asslsb-fem: every target first runs the idempotent set-up (scripts/setup.sh).
PY      := .venv/bin/python
MPIRUN  := mpirun -n 2 --oversubscribe
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export OMPI_MCA_rmaps_base_oversubscribe := 1
# one thread per MPI rank: the 2 cores are shared by the ranks
export OMP_NUM_THREADS := 1
export OPENBLAS_NUM_THREADS := 1

.PHONY: setup demo demo3d test test-serial test-mpi verify bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) run_case.py cases/quickstart.toml --out results/quickstart

demo3d: setup
	$(PY) run_case.py cases/quickstart_3d.toml --out results/quickstart_3d

test:
	@bash scripts/setup.sh --test
	$(MAKE) --no-print-directory test-serial test-mpi

test-serial:
	$(PY) -m ruff check .
	$(PY) -m pytest -q -p no:cacheprovider tests

test-mpi:
	$(MPIRUN) $(PY) -m pytest -q -p no:cacheprovider -m mpi tests

verify: setup
	$(PY) -m fem.verification --out results/verification

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf results .pytest_cache
