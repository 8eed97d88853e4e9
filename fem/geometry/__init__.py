"""Microstructure: particle packings (numpy), their percolation, and the gmsh OCC mesh builder.

`packing` and `percolation` need no gmsh; import `fem.geometry.builder` for meshing.
"""

from fem.geometry.packing import Packing, Particle, generate_packing
from fem.geometry.percolation import connectivity, volume_fractions

__all__ = ["Packing", "Particle", "generate_packing", "connectivity", "volume_fractions"]
