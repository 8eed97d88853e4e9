"""Generating and meshing the 3D cases: particles, cells, seconds, peak memory, fractions.

Each job runs in its own process (fresh peak memory): generate the packing, mesh it, report
the exact (Monte Carlo, OCC masses for the OCC builder) and meshed volume fractions of the
cathode layer. Jobs:
  quickstart_3d_occ    - the geometry of cases/quickstart_3d.toml, chains of spheres, OCC builder
  cathode_3d_small     - cases/cathode_3d_small.toml: the quickstart_3d box with cathode_3d's
                         generator and mesher settings (cylinder fibres, CGAL)
  cathode_3d           - cases/cathode_3d.toml (40x30x30 um layer, CGAL)
  robustness           - consecutive seeds of cathode_3d_small (and --cathode-seeds of
                         cathode_3d): failures and their messages, and what the mesher recovered
                         from (a stalled fibre network relaxed, boundary slivers dropped) or where a
                         meshed fraction misses its target by more than 0.02
Writes results/bench/geometry.json (--sweep: geometry_seeds.json, rewritten after every job so
a cut-off sweep keeps what it measured) and prints the figures last.

    .venv/bin/python bench/geometry.py [--seeds 5] [--cathode-seeds 1] [--skip-cathode]
    .venv/bin/python bench/geometry.py --sweep --seeds 20 --cathode-seeds 10   (seeds only)
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
        out["generator_recoveries"] = packing.meta.get("recoveries", [])
        report = build_mesh(packing, geo.mesh, WORK / f"{name}_seed{geo.seed}.msh")
        out["seconds_mesh"] = report["seconds"]
        out["cells"] = report["cells"]
        out["vertices"] = report["vertices"]
        out["fractions_target"] = {"S": geo.sulfur.volume_fraction, "C": geo.carbon.volume_fraction}
        out["fractions_exact"] = report["volume_fractions"]
        out["fractions_meshed"] = report["mesh_volume_fractions"]
        for key in ("exact_interface_areas_um2", "mesh_interface_areas_um2", "dropped_boundary_slivers",
                    "separator_plane_snap_um", "seconds_image", "seconds_cgal", "seconds_tag", "seconds_write",
                    "seconds_exact", "quality"):
            if key in report:
                out[key] = report[key]
        out["recovered"] = _recoveries(out)
        out["ok"] = True
    except Exception as err:  # a failure is a result here: report it and go on
        out["ok"] = False
        out["error"] = f"{type(err).__name__}: {err}"
        out["where"] = traceback.format_exc(limit=-2)
    out["seconds_total"] = time.perf_counter() - t0
    out["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _recoveries(out: dict) -> list[str]:
    """What the generator or mesher recovered from, or a fraction off target by more than 0.02."""
    notes = list(out.get("generator_recoveries", []))
    if out.get("dropped_boundary_slivers"):
        notes.append(f"{out['dropped_boundary_slivers']} boundary slivers dropped")
    for phase, target in out["fractions_target"].items():
        if abs(out["fractions_meshed"][phase] - target) > 0.02:
            notes.append(f"meshed {phase} {out['fractions_meshed'][phase]:.3f} misses target {target:.3f} by > 0.02")
    return notes


def run_job(*args) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_job, *args).result()


SMALL = "cases/cathode_3d_small.toml"
CATHODE = "cases/cathode_3d.toml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="consecutive seeds 1.. of cathode_3d_small")
    ap.add_argument("--cathode-seeds", type=int, default=1, help="seeds 1.. of cathode_3d (1 = seed 1 only)")
    ap.add_argument("--skip-cathode", action="store_true")
    ap.add_argument("--sweep", action="store_true", help="the seed sweeps only (no quickstart jobs)")
    ap.add_argument("--json", help="file name under results/bench/ (default geometry.json, "
                                   "with --sweep geometry_seeds.json)")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / (args.json or ("geometry_seeds.json" if args.sweep else "geometry.json"))
    jobs, seeds = [], []

    def record(into: list, job: dict) -> None:
        into.append(job)
        path.write_text(json.dumps({"jobs": jobs, "robustness": seeds}, indent=1) + "\n")

    if not args.sweep:
        record(jobs, run_job("quickstart_3d_occ", "cases/quickstart_3d.toml", {"mesh_file": None}, None))
    for s in range(1, args.seeds + 1):
        record(seeds, run_job("cathode_3d_small", SMALL, {}, s))
    if not args.skip_cathode:
        for s in range(1, args.cathode_seeds + 1):
            record(jobs if s == 1 and not args.sweep else seeds, run_job("cathode_3d", CATHODE, {}, s))
    print(f"wrote {path}")
    print(f"{'job':17s} {'seed':>4s} {'parts':>5s} {'S':>4s} {'cells':>8s} {'verts':>7s} {'gen s':>6s} "
          f"{'img s':>5s} {'cgal s':>6s} {'tag s':>5s} {'wrt s':>5s} {'ex s':>5s} {'MB':>5s}  "
          f"fractions target/exact/meshed; areas um2 exact/meshed")
    for j in jobs + seeds:
        if not j["ok"]:
            print(f"{j['job']:17s} {j['seed']:4d} FAILED after {j['seconds_total']:.1f} s: {j['error']}")
            continue
        ft, fe, fm = j["fractions_target"], j["fractions_exact"], j["fractions_meshed"]
        sec = " ".join(f"{j.get(k, float('nan')):{w}.1f}" for k, w in (
            ("seconds_image", 5), ("seconds_cgal", 6), ("seconds_tag", 5), ("seconds_write", 5), ("seconds_exact", 5)))
        line = (f"{j['job']:17s} {j['seed']:4d} {j['particles']:5d} {j['sulfur_particles']:4d} {j['cells']:8d} "
                f"{j['vertices']:7d} {j['seconds_generate']:6.1f} {sec} {j['peak_rss_MB']:5.0f}  "
                + "  ".join(f"{ph} {ft[ph]:.2f}/{fe[ph]:.3f}/{fm[ph]:.3f}" for ph in ("S", "C")))
        if "exact_interface_areas_um2" in j:
            ea, ma = j["exact_interface_areas_um2"], j["mesh_interface_areas_um2"]
            line += "  " + "  ".join(f"{n} {ea[n]:.0f}/{ma[n]:.0f}" for n in ("S|SE", "C|SE"))
        if j.get("recovered"):
            line += "  [" + "; ".join(j["recovered"]) + "]"
        print(line)
    for name in ("cathode_3d_small", "cathode_3d"):
        runs = [j for j in seeds if j["job"] == name]
        if runs:
            ok = [j for j in runs if j["ok"]]
            total = sum(j["seconds_total"] for j in runs)
            print(f"robustness {name}: {len(ok)} of {len(runs)} seeds meshed, "
                  f"{sum(bool(j['recovered']) for j in ok)} with recoveries, {total:.0f} s in all")


if __name__ == "__main__":
    main()
