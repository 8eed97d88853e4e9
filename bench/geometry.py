"""Generating and meshing the 3D cases: particles, cells, seconds, peak memory, fractions.

Each job runs in its own process (fresh peak memory): generate the packing, mesh it, report
the exact (Monte Carlo, OCC masses for the OCC builder) and meshed volume fractions of the
cathode layer. Jobs:
  quickstart_3d_occ    - the geometry of cases/quickstart_3d.toml, chains of spheres, OCC builder
  quickstart_3d_cgal   - the same box with cylinder fibres, labelled-image mesher (CGAL)
  cathode_3d           - cases/cathode_3d.toml (40x30x30 um layer, CGAL)
  robustness           - consecutive seeds of a smaller cylinder case (and --cathode-seeds of
                         cathode_3d): failures and their messages
Writes results/bench/geometry.json and prints the figures last.

    .venv/bin/python bench/geometry.py [--seeds 5] [--cathode-seeds 1] [--skip-cathode]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

OUT = ROOT / "results" / "bench"
WORK = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_geometry"  # meshes of 7M tets: not in the repo


def _job(name: str, toml: str, changes: dict, seed: int | None) -> dict:
    """Generate + mesh in this (child) process; returns figures or the error message."""
    sys.path.insert(0, str(ROOT))
    from fem.geometry.__main__ import geometry_from_toml
    from fem.geometry.builder import build_mesh
    from fem.geometry.packing import generate_packing

    geo = geometry_from_toml(ROOT / toml)
    for key, value in changes.items():
        target = geo
        *path, leaf = key.split(".")
        for part in path:
            target = getattr(target, part)
        setattr(target, leaf, value)
    if seed is not None:
        geo.seed = seed
    out = {"job": name, "seed": geo.seed, "mesher": geo.mesh.mesher, "carbon_kind": geo.carbon.kind}
    t0 = time.perf_counter()
    try:
        packing = generate_packing(geo)
        out["seconds_generate"] = time.perf_counter() - t0
        out["particles"] = len(packing.particles)
        out["sulfur_particles"] = sum(p.phase == "S" for p in packing.particles)
        report = build_mesh(packing, geo.mesh, WORK / f"{name}_seed{geo.seed}.msh")
        out["seconds_mesh"] = report["seconds"]
        out["cells"] = report["cells"]
        out["fractions_exact"] = report["volume_fractions"]
        out["fractions_meshed"] = report["mesh_volume_fractions"]
        for key in ("exact_interface_areas_um2", "mesh_interface_areas_um2", "dropped_boundary_slivers",
                    "seconds_image", "seconds_cgal"):
            if key in report:
                out[key] = report[key]
        out["ok"] = True
    except Exception as err:  # a failure is a result here: report it and go on
        out["ok"] = False
        out["error"] = f"{type(err).__name__}: {err}"
        out["where"] = traceback.format_exc(limit=-2)
    out["seconds_total"] = time.perf_counter() - t0
    out["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_job(*args) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_job, *args).result()


SMALL = {"carbon.kind": "cylinders", "carbon.radius_mean_um": 0.3, "carbon.radius_min_um": 0.3,
         "carbon.radius_std_um": 0.0, "carbon.volume_fraction": 0.18, "carbon.length_um": 6.0,
         "mesh.mesher": "cgal", "mesh.voxel_um": 0.1, "mesh.size_min_um": 0.4, "mesh.size_max_um": 1.5,
         "mesh_file": None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="consecutive seeds of the small cylinder case")
    ap.add_argument("--cathode-seeds", type=int, default=1, help="seeds of cathode_3d (1 = seed 1 only)")
    ap.add_argument("--skip-cathode", action="store_true")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    jobs = [run_job("quickstart_3d_occ", "cases/quickstart_3d.toml", {"mesh_file": None}, None),
            run_job("quickstart_3d_cgal", "cases/quickstart_3d.toml", SMALL, None)]
    seeds = [run_job("small_cgal", "cases/quickstart_3d.toml", SMALL, s) for s in range(1, args.seeds + 1)]
    if not args.skip_cathode:
        jobs.append(run_job("cathode_3d", "cases/cathode_3d.toml", {}, 1))
        seeds += [run_job("cathode_3d", "cases/cathode_3d.toml", {}, s) for s in range(2, args.cathode_seeds + 1)]
    result = {"jobs": jobs, "robustness": seeds}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "geometry.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT / 'geometry.json'}")
    print(f"{'job':20s} {'seed':>4s} {'particles':>9s} {'S':>5s} {'cells':>9s} {'gen s':>7s} {'mesh s':>7s} "
          f"{'MB':>6s}  fractions exact -> meshed (S, C)")
    for j in jobs + seeds:
        if not j["ok"]:
            print(f"{j['job']:20s} {j['seed']:4d} FAILED after {j['seconds_total']:.1f} s: {j['error']}")
            continue
        fe, fm = j["fractions_exact"], j["fractions_meshed"]
        print(f"{j['job']:20s} {j['seed']:4d} {j['particles']:9d} {j['sulfur_particles']:5d} {j['cells']:9d} "
              f"{j['seconds_generate']:7.1f} {j['seconds_mesh']:7.1f} {j['peak_rss_MB']:6.0f}  "
              f"S {fe['S']:.3f}->{fm['S']:.3f}  C {fe['C']:.3f}->{fm['C']:.3f}")
    failed = [j for j in seeds if not j["ok"]]
    print(f"robustness: {len(seeds) - len(failed)} of {len(seeds)} seeds meshed")


if __name__ == "__main__":
    main()
