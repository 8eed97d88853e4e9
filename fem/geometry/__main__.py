"""Generate a packing, mesh it and report fractions and percolation.

    python -m fem.geometry --out meshes/quickstart_2d.msh --dimension 2 --separator-um 10 \\
        --thickness-um 30 --width-um 20 --seed 1 --size-min-um 0.4 --size-max-um 2.0
    python -m fem.geometry --toml cases/quickstart.toml --out /tmp/q.msh
    python -m fem.geometry --toml cases/quickstart.toml --export-tiff /tmp/q.tif --voxel-um 0.1
    python -m fem.geometry --toml cases/image_quickstart.toml --out /tmp/image.msh

--export-tiff writes the cathode layer as a segmented TIFF (S=1, SE=2, C=3, void=4; one page
per x slice in 3D) with voxels of --voxel-um, and prints the [geometry.image] keys that read
it back; with --out the mesh is written as well. A case with [geometry.image] meshes the image.

A TOML file contributes its [geometry] table (with [geometry.sulfur], .carbon, .void, .mesh);
flags given on the command line override it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fem.case import CaseError, GeometryConfig, load_case
from fem.geometry.builder import build_mesh
from fem.geometry.packing import Packing, generate_packing, tangency_warning
from fem.geometry.percolation import connectivity

# flag -> (sub-table or None, field)
_FLAGS = {
    "dimension": (None, "dimension", int),
    "separator_um": (None, "separator_um", float),
    "thickness_um": (None, "thickness_um", float),
    "width_um": (None, "width_um", float),
    "seed": (None, "seed", int),
    "min_gap_um": (None, "min_gap_um", float),
    "sulfur_fraction": ("sulfur", "volume_fraction", float),
    "sulfur_radius_um": ("sulfur", "radius_mean_um", float),
    "sulfur_radius_std_um": ("sulfur", "radius_std_um", float),
    "sulfur_radius_min_um": ("sulfur", "radius_min_um", float),
    "carbon_fraction": ("carbon", "volume_fraction", float),
    "carbon_radius_um": ("carbon", "radius_mean_um", float),
    "carbon_kind": ("carbon", "kind", str),
    "carbon_length_um": ("carbon", "length_um", float),
    "void_fraction": ("void", "volume_fraction", float),
    "void_radius_um": ("void", "radius_mean_um", float),
    "size_min_um": ("mesh", "size_min_um", float),
    "size_max_um": ("mesh", "size_max_um", float),
    "size_transition_um": ("mesh", "size_transition_um", float),
    "mesher": ("mesh", "mesher", str),
    "voxel_um": ("mesh", "voxel_um", float),
}


def geometry_from_toml(path: Path) -> GeometryConfig:
    """The [geometry] table of a case file, read and validated by the case loader (the one
    TOML loader: same errors, paths resolved from the file's folder)."""
    try:
        return load_case(path).geometry
    except (CaseError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None


def main(argv=None) -> None:
    """The command line; bad input ends with one clear message (exit status 2), no traceback."""
    try:
        _main(argv)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        raise SystemExit(f"python -m fem.geometry: {err}") from None


def _main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m fem.geometry", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--toml", type=Path, help="case or geometry TOML file with a [geometry] table")
    ap.add_argument("--out", type=Path,
                    help="mesh file to write (.msh); the packing goes beside it (.json)")
    ap.add_argument("--export-tiff", type=Path, metavar="PATH",
                    help="write the packing as a segmented TIFF image (voxel edge --voxel-um)")
    ap.add_argument("--verbose", action="store_true", help="gmsh messages on the terminal")
    for flag, (_, _, kind) in _FLAGS.items():
        ap.add_argument("--" + flag.replace("_", "-"), type=kind)
    args = ap.parse_args(argv)
    geo = geometry_from_toml(args.toml) if args.toml else GeometryConfig()
    for flag, (sub, name, _) in _FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            setattr(getattr(geo, sub) if sub else geo, name, value)
    if args.out is None and args.export_tiff is None:
        ap.error("give --out (a mesh) and/or --export-tiff (an image)")
    _check(geo)
    packing = Packing.from_json(geo.particles_file) if geo.particles_file else generate_packing(geo)
    if args.export_tiff is not None:
        from fem.geometry.image import export_tiff
        from fem.geometry.percolation import default_voxel_um

        exported = export_tiff(packing, args.export_tiff, args.voxel_um or default_voxel_um(packing))
        print(json.dumps({"tiff": str(args.export_tiff)} | exported, indent=1))
        if args.out is None:
            return
    if (warning := tangency_warning(packing, geo)) is not None:
        print(f"warning: {warning}", file=sys.stderr)
    result = build_mesh(packing, geo.mesh, args.out, verbose=args.verbose)
    if geo.image.file is not None:  # the image's own fractions and connectivity are in result
        report = {"mesh": str(args.out), "image": str(geo.image.file)}
        print(json.dumps(report | result, indent=1))
        return
    targets = {"S": geo.sulfur.volume_fraction, "C": geo.carbon.volume_fraction, "void": geo.void.volume_fraction}
    report = {"mesh": str(args.out), "particles": len(packing.particles), "target_fractions": targets}
    report |= result | {"connectivity": connectivity(packing)}
    print(json.dumps(report, indent=1))


def _check(geo: GeometryConfig) -> None:
    """The case loader's geometry checks, so the CLI rejects what a case file would."""
    from fem.case.loading import _geometry_errors

    errors: list[str] = []

    def need(key, value, ok, what):
        if not ok:
            errors.append(f"{key} = {value!r} is out of range; allowed: {what}")

    _geometry_errors(geo, need, errors)
    if errors:
        raise ValueError("bad geometry input:\n  " + "\n  ".join(errors))


if __name__ == "__main__":
    main()
