"""Stage 7, cycling: the cycle loop, the slow ageing state, cycle jumping, checkpoints, Ea."""
