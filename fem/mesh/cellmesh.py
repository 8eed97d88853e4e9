"""A cell's mesh: .msh file -> DOLFINx mesh + cell/facet tags, with its particle geometry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fem import compat
from fem.geometry.packing import Packing


@dataclass
class CellMesh:
    mesh: object  # dolfinx.mesh.Mesh, coordinates in um
    cell_tags: object
    facet_tags: object
    packing: Packing  # the particles the mesh was built from, or its image (ImagePacking): d_C, box
    path: Path

    @property
    def dimension(self) -> int:
        return self.packing.dimension


def packing_path(msh_path: Path) -> Path:
    return Path(msh_path).with_suffix(".json")


def load_mesh(msh_path: Path, comm) -> CellMesh:
    """Read the mesh on rank 0, distribute it, and read the particle list (or image record) beside it."""
    packing = Packing.from_json(packing_path(msh_path))
    mesh, cell_tags, facet_tags = compat.read_msh(msh_path, comm, gdim=packing.dimension)
    return CellMesh(mesh, cell_tags, facet_tags, packing, Path(msh_path))
