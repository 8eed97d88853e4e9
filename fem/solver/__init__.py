"""Stage 5, the nonlinear solver: PETSc SNES Newton and the linear-solver presets."""

from fem.solver.newton import LINEAR_PRESETS, NewtonSolver, petsc_options

__all__ = ["LINEAR_PRESETS", "NewtonSolver", "petsc_options"]
