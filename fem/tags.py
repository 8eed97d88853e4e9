"""Tag numbers of MODEL.md section 1: gmsh physical groups, DOLFINx meshtags, XDMF output."""

# cells
S = 1
SE = 2
C = 3
VOID = 4
CELL_TAGS = {"S": S, "SE": SE, "C": C, "void": VOID}

# facets
S_SE = 12
S_C = 13
C_SE = 23
ANODE = 101
COLLECTOR = 102
LATERAL = 103
FACET_TAGS = {"S|SE": S_SE, "S|C": S_C, "C|SE": C_SE, "anode": ANODE, "collector": COLLECTOR, "lateral": LATERAL}


def interface_tag(phase_a: int, phase_b: int) -> int | None:
    """Facet tag of the interface between two cell phases (order-free), None if not tagged."""
    lo, hi = sorted((phase_a, phase_b))
    return {(S, SE): S_SE, (S, C): S_C, (SE, C): C_SE}.get((lo, hi))
