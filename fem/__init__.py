"""asslsb-fem: microstructure-resolved FEM for all-solid-state Li-S composite cathodes."""

__version__ = "0.1.0"
