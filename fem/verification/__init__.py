"""Verification of the solver (issue 3): manufactured solutions, analytic limits, mesh
convergence and parallel consistency, gathered into a report by `python -m fem.verification`.

Every check runs the solver's own forms (fem.physics.problem.CellProblem); what is written
here is only the exact answers to compare with.
"""
