"""Write the shipped example image examples/images/composite_2d.tif (no download).

A 2D composite cathode as a segmentation would deliver it: an 8-bit label image (S = 80,
SE = 160, C = 240), 0.2 um pixels, the through-thickness direction along the rows (array
axis 0) with the collector in the first row, and no separator. It is drawn from a seeded
packing of the project's generator (fem.geometry.packing), so the connectivity of C is
guaranteed, and then stored in that foreign convention; cases/image_quickstart.toml maps it
back ([geometry.image] labels, thickness_axis, collector, separator = "pad").

    python scripts/make_example_image.py [--out examples/images/composite_2d.tif] [--voxel-um 0.2]
    python scripts/make_example_image.py --3d --out /tmp/composite_3d.tif --voxel-um 0.25

--3d: a 10 um thick, 8 x 8 um layer with cylinder carbon fibres as a multi-page TIFF whose
pages are lateral (y) slices, thickness along axis 1 and the collector at its last index:
read it with thickness_axis = 1, collector = "last", the same labels, voxel_um as given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LABELS = {"S": 80, "SE": 160, "C": 240}


def make(out: Path, voxel_um: float = 0.2, seed: int = 3, three_d: bool = False) -> dict:
    import tifffile

    from fem import tags
    from fem.case.schema import CarbonSpec, GeometryConfig, PhaseSpec
    from fem.geometry.image import packing_labels
    from fem.geometry.packing import generate_packing

    if three_d:
        geo = GeometryConfig(dimension=3, separator_um=2.0, thickness_um=10.0, width_um=8.0, seed=1,
                             sulfur=PhaseSpec(0.28, 1.6, 0.4, 0.8),
                             carbon=CarbonSpec(0.18, 0.3, 0.0, 0.3, kind="cylinders", length_um=6.0))
    else:
        geo = GeometryConfig(dimension=2, separator_um=5.0, thickness_um=20.0, width_um=12.0, seed=seed,
                             sulfur=PhaseSpec(0.28, 1.6, 0.3, 0.8), carbon=CarbonSpec(0.20, 0.5))
    t = packing_labels(generate_packing(geo), voxel_um)  # cathode layer, x along axis 0, collector last
    img = np.zeros(t.shape, np.uint8)
    for phase, value in LABELS.items():
        img[t == tags.CELL_TAGS[phase]] = value
    # the conventions of a segmentation, not of the project: 2D collector in the first row,
    # 3D pages along y with the thickness along axis 1
    img = np.swapaxes(img, 0, 1) if three_d else img[::-1]
    out.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(str(out), img)
    return {"file": str(out), "shape": list(img.shape), "voxel_um": voxel_um,
            "fractions": {ph: float(np.mean(img == v)) for ph, v in LABELS.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "examples" / "images" / "composite_2d.tif")
    ap.add_argument("--voxel-um", type=float, default=0.2)
    ap.add_argument("--3d", dest="three_d", action="store_true", help="a 3D stack with cylinder fibres")
    args = ap.parse_args()
    print(json.dumps(make(args.out, args.voxel_um, three_d=args.three_d), indent=1))


if __name__ == "__main__":
    main()
