"""The one facet tagger: gmsh physical groups for cells by phase and facets by what they touch.

Cells get the phase tags of fem/tags.py; a facet between two volumes gets the interface tag
of their phases (none between equal phases), a facet of one volume the anode (x = 0),
collector (x = lx) or lateral tag. Runs on the current gmsh model after `fragment`.
"""

from __future__ import annotations

import gmsh

from fem import tags


def tag_physical_groups(dim: int, lx_um: float, phase_of: dict[int, str], tol_um: float) -> list[int]:
    """Add the physical groups; returns the facets between different phases.

    phase_of maps each volume (entity of dimension dim) to its phase name (tags.CELL_TAGS).
    """
    for phase in tags.CELL_TAGS:
        vols = sorted(t for t, ph in phase_of.items() if ph == phase)
        if vols:
            gmsh.model.addPhysicalGroup(dim, vols, tags.CELL_TAGS[phase], name=phase)
    groups: dict[int, list[int]] = {}
    interfaces = []
    for _, facet in gmsh.model.getEntities(dim - 1):
        up, _ = gmsh.model.getAdjacencies(dim - 1, facet)
        if len(up) == 2:
            a, b = (phase_of[int(v)] for v in up)
            if a == b:
                continue
            interfaces.append(facet)
            tag = tags.interface_tag(tags.CELL_TAGS[a], tags.CELL_TAGS[b])
        elif len(up) == 1:
            x = gmsh.model.occ.getCenterOfMass(dim - 1, facet)[0]
            tag = tags.ANODE if abs(x) < tol_um else tags.COLLECTOR if abs(x - lx_um) < tol_um else tags.LATERAL
        else:
            raise RuntimeError(f"facet {facet} has {len(up)} adjacent volumes")
        if tag is not None:
            groups.setdefault(tag, []).append(facet)
    names = {v: k for k, v in tags.FACET_TAGS.items()}
    for tag, facets in sorted(groups.items()):
        gmsh.model.addPhysicalGroup(dim - 1, facets, tag, name=names[tag])
    return interfaces
