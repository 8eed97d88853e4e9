#!/usr/bin/env bash
# Idempotent set-up on Debian 12: system FEniCSx stack, the venv, the package.
# Usage: bash scripts/setup.sh [--test]   (--test: also what the tests need, see below)
# Quick when everything is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="python3-dolfinx python3-h5py-mpi python3-matplotlib python3-venv python3-dev libopenblas0-pthread openmpi-bin make python3-pygalmesh python3-tifffile python3-pandas"
# --test: also the real ParaView 5.11 (pvbatch with its Python) and a virtual X server for
# tests/system/test_paraview.py
TEST_APT_PACKAGES="paraview python3-paraview xvfb xauth"
[ "${1:-}" = "--test" ] && APT_PACKAGES="$APT_PACKAGES $TEST_APT_PACKAGES"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv (system site packages visible)"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi

stamp=.venv/.asslsb-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing asslsb-fem into .venv"
  # keep Debian's numpy and scipy: DOLFINx, petsc4py and h5py are built against them
  /usr/bin/python3 -c "import numpy, scipy
for mod in (numpy, scipy): print(f'{mod.__name__}=={mod.__version__}')" > .venv/constraints.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check -c .venv/constraints.txt -e ".[test]"
  touch "$stamp"
fi
