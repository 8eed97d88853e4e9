"""asslsb-fem: microstructure-resolved FEM for all-solid-state Li-S composite cathodes."""

import os

# Debian's pthread OpenBLAS spins its idle threads: on a 2D cycle they burned 25 s of system
# time on the second core per 31 s of wall time, stolen from MPI ranks and parallel runs
# (it must be set before numpy is first imported; the Makefile sets it too)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
