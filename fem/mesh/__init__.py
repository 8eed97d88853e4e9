"""Stage 3, the mesh: .msh -> DOLFINx mesh with cell and facet tags, its particles, measures."""

from fem.mesh.cellmesh import CellMesh, load_mesh, packing_path

__all__ = ["CellMesh", "load_mesh", "packing_path"]
