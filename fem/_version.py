"""The package version (a leaf: every stage may read it)."""

__version__ = "0.1.0"
