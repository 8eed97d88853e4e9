"""The fast subset of the verification (python -m fem.verification runs the full study)."""

from __future__ import annotations

import pytest
from mpi4py import MPI

from fem.physics.spaces import FIELD_NAMES
from fem.verification import mms


@pytest.mark.mpi
def test_mms_2d_converges_at_p1_rates(shared_tmp):
    """Manufactured phi_e, phi_s, x through the solver's own forms: L2 errors fall as h^2 and
    H1 errors as h on three coarse 2D meshes; on 2 ranks the errors equal the serial ones."""
    comm = MPI.COMM_WORLD
    result = mms.run_mms(2, shared_tmp, sizes=mms.FAST_SIZES_2D, comm=comm)
    for name in FIELD_NAMES:
        assert 1.8 <= result["rates"][f"{name}_L2"][-1] <= 2.3, (name, result["rates"])
        assert 0.85 <= result["rates"][f"{name}_H1"][-1] <= 1.3, (name, result["rates"])
    assert all(level["newton_iterations"] >= 3 for level in result["levels"])  # nonlinear
    if comm.size == 1:
        return
    same = True
    if comm.rank == 0:
        serial = mms.run_mms(2, shared_tmp / "serial", sizes=mms.FAST_SIZES_2D, comm=MPI.COMM_SELF)
        for par, ser in zip(result["levels"], serial["levels"]):
            for name in FIELD_NAMES:
                for norm in ("L2", "H1"):
                    a, b = par["errors"][name][norm], ser["errors"][name][norm]
                    same &= abs(a - b) <= 1e-10 * b
    assert comm.bcast(same, root=0)
