"""Segmented images as geometry (fem.geometry.image): reading, label map, crop/downsample,
orientation, separator, percolation errors, distance to carbon, export, the 2D pixel mesher."""

import json
import math

import numpy as np
import pytest

from fem import tags
from fem.case import CaseError, load_case
from fem.case.schema import GeometryConfig, ImageConfig
from fem.geometry.image import (
    ImageError,
    ImagePacking,
    check_percolation,
    downsample,
    export_tiff,
    image_from_config,
    map_labels,
    read_array,
)
from fem.geometry.packing import Packing, Particle


def _geo(path, **kw) -> GeometryConfig:
    sep = kw.pop("separator_um", 1.0)
    return GeometryConfig(separator_um=sep, image=ImageConfig(file=path, voxel_um=kw.pop("voxel_um", 0.5), **kw))


def test_npy_tiff_folder_and_raw_read_the_same_array(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    a = np.random.default_rng(0).integers(0, 4, size=(5, 6, 7)).astype(np.uint8)
    np.save(tmp_path / "a.npy", a)
    tifffile.imwrite(str(tmp_path / "a.tif"), a)
    (tmp_path / "stack").mkdir()
    for i, page in enumerate(a):
        tifffile.imwrite(str(tmp_path / "stack" / f"slice_{i:03d}.tif"), page)
    a.astype("<u2").tofile(tmp_path / "a.raw")
    (tmp_path / "a.json").write_text(json.dumps({"shape": [5, 6, 7], "dtype": "<u2"}))
    for name in ("a.npy", "a.tif", "stack", "a.raw"):
        assert np.array_equal(read_array(tmp_path / name), a), name
    np.save(tmp_path / "slice.npy", a[:1])  # one slice: a 2D image
    assert read_array(tmp_path / "slice.npy").shape == (6, 7)
    (tmp_path / "a.json").write_text(json.dumps({"shape": [5, 6, 8], "dtype": "<u2"}))
    with pytest.raises(ImageError, match="holds 210 values of uint16, the header's shape"):
        read_array(tmp_path / "a.raw")


def test_unmapped_values_are_named():
    a = np.array([[0, 1], [7, 9]])
    with pytest.raises(ImageError, match=r"image values \[7, 9\] are not in geometry.image.labels"):
        map_labels(a, {"SE": 0, "S": 1})
    t = map_labels(a, {"SE": [0, 9], "S": 1, "C": 7})
    assert t.tolist() == [[tags.SE, tags.S], [tags.C, tags.SE]]


def test_downsample_takes_the_majority_and_breaks_ties_by_priority():
    t = np.full((4, 4), tags.SE, np.uint8)
    t[0, 0] = tags.S  # 1 of 4: SE wins
    t[2:, 0:2] = [[tags.S, tags.S], [tags.C, tags.C]]  # 2 S vs 2 C: C wins
    t[0:2, 2:] = [[tags.S, tags.S], [tags.S, tags.VOID]]
    assert downsample(t, 2).tolist() == [[tags.SE, tags.S], [tags.C, tags.SE]]
    assert downsample(np.zeros((5, 3), np.uint8) + tags.S, 2).shape == (2, 1)  # remainder dropped


def test_orientation_crop_and_separator(tmp_path):
    a = np.full((6, 10), 2, np.uint8)  # SE; thickness along axis 1
    a[:, 0] = 3  # C at index 0 of axis 1: the collector side
    a[:, 4:6] = 1
    np.save(tmp_path / "a.npy", a)
    p = image_from_config(_geo(tmp_path / "a.npy", thickness_axis=1, collector="first",
                               crop=[[1, 5], [0, 10]], separator_um=1.0))
    assert isinstance(p, ImagePacking)
    assert p.labels.shape == (12, 4) and p.n_separator == 2  # 1 um of SE at 0.5 um voxels
    assert p.box_um == (6.0, 2.0) and p.separator_um == 1.0
    assert (p.labels[:2] == tags.SE).all() and (p.labels[-1] == tags.C).all()
    assert p.fractions()["S"] == pytest.approx(0.2) and p.fractions()["C"] == pytest.approx(0.1)
    own = image_from_config(_geo(tmp_path / "a.npy", thickness_axis=1, collector="first", separator="image"))
    assert own.labels.shape == (10, 6) and own.n_separator == 2  # the image's own SE slices 8, 9
    with pytest.raises(ImageError, match=r"the first geometry.separator_um = 1 um \(2 slices\) must be dense SE"):
        image_from_config(_geo(tmp_path / "a.npy", thickness_axis=1, collector="last", separator="image"))
    with pytest.raises(ImageError, match=r"crop\[1\] = \[0, 11\] reaches beyond the image's 10 voxels"):
        image_from_config(_geo(tmp_path / "a.npy", crop=[[0, 6], [0, 11]]))


def test_non_percolating_image_is_refused_with_the_connected_fractions(tmp_path):
    a = np.full((10, 10), 2, np.uint8)  # SE
    a[:, 7:] = 3  # a C stripe along x, touching the collector
    a[3:6, 2:8] = 3  # a C block joined to the stripe
    a[4, 3] = 1  # S enclosed in C: electronically but not ionically connected
    np.save(tmp_path / "a.npy", a)
    p = image_from_config(_geo(tmp_path / "a.npy"))
    with pytest.raises(ImageError) as err:
        check_percolation(p)
    msg = str(err.value)
    assert "no S is connected both to the collector (through C) and to the separator" in msg
    assert "'S_electronically_connected': 1.0" in msg and "'S_ionically_connected': 0.0" in msg
    a[4, 2] = 2  # open the enclosure towards the SE: now active
    np.save(tmp_path / "a.npy", a)
    assert check_percolation(image_from_config(_geo(tmp_path / "a.npy")))["S_active"] == 1.0


def test_distance_to_carbon_from_the_distance_transform(tmp_path):
    """A C slab x >= 8 um: the distance is 8 - x within half a voxel, 0 in C; +inf without C."""
    a = np.full((20, 6, 6), 2, np.uint8)
    a[16:] = 3
    a[4, 2, 2] = 1
    np.save(tmp_path / "a.npy", a)
    p = image_from_config(_geo(tmp_path / "a.npy", voxel_um=0.5, separator_um=0.5))
    x = np.linspace(0.3, 10.2, 40)
    pts = np.column_stack([x, np.full_like(x, 1.3), np.full_like(x, 1.7)])
    exact = np.maximum(8.5 - x, 0.0)  # the layer starts after 0.5 um of separator
    assert np.abs(p.distance_to_carbon(pts) - exact).max() <= 0.25 + 1e-12
    assert np.abs(p.distance_to_carbon(pts) - exact)[x < 7.5].max() < 1e-9  # exact away from the surface
    a[16:] = 2
    np.save(tmp_path / "b.npy", a)
    assert np.isinf(image_from_config(_geo(tmp_path / "b.npy")).distance_to_carbon(pts)).all()


def test_json_beside_a_mesh_records_the_image(tmp_path):
    a = np.full((8, 4), 2, np.uint8)
    a[:, :2] = 1
    np.save(tmp_path / "a.npy", a)
    p = image_from_config(_geo(tmp_path / "a.npy"))
    p.to_json(tmp_path / "mesh.json")
    data = json.loads((tmp_path / "mesh.json").read_text())
    assert data["particles"] == [] and data["image"]["labels_file"] == "mesh.labels.npy"
    assert data["image"]["source"]["file"] == str(tmp_path / "a.npy")
    q = Packing.from_json(tmp_path / "mesh.json")  # what load_mesh reads
    assert isinstance(q, ImagePacking) and q.box_um == p.box_um and np.array_equal(q.labels, p.labels)


def test_case_keys_are_validated_all_at_once(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4), np.uint8))
    (tmp_path / "c.raw").write_bytes(b"\0" * 16)
    case = tmp_path / "case.toml"
    case.write_text('[geometry.image]\nfile = "c.raw"\nlabels = {S = 1, SE = 1, Cu = 3}\ncollector = "top"\n'
                    'crop = [[5, 2]]\ndownsample = 0\nseparator = "none"\n')
    with pytest.raises(CaseError) as err:
        load_case(case)
    text = str(err.value)
    for part in ("geometry.image.header_file: the raw image c.raw needs a JSON header",
                 "geometry.image.voxel_um = 0.0 is out of range", "unknown phases ['Cu']",
                 "value 1 is given to both S and SE", "geometry.image.collector = 'top'",
                 "geometry.image.crop", "geometry.image.downsample = 0", "geometry.image.separator = 'none'"):
        assert part in text, part
    case.write_text('[geometry.image]\nfile = "a.npy"\nvoxel_um = 0.1\nlabels = {S = 1, SE = 0}\n')
    g = load_case(case).geometry
    assert g.image.file == tmp_path / "a.npy" and g.image.labels == {"S": 1, "SE": 0}


def test_export_tiff_round_trip(tmp_path):
    pytest.importorskip("tifffile")
    packing = Packing(2, (10.0, 6.0), 2.0, [Particle("S", (5.0, 3.0), 1.5), Particle("C", (9.0, 3.0), 1.2)])
    out = export_tiff(packing, tmp_path / "p.tif", 0.1)
    assert out["shape"] == [80, 60] and out["box_mismatch_um"] < 1e-12
    geo = GeometryConfig(separator_um=2.0, image=ImageConfig(**(out["image"] | {"file": tmp_path / "p.tif"})))
    p = image_from_config(geo)
    assert p.box_um == pytest.approx(packing.box_um) and p.separator_um == pytest.approx(2.0)
    exact = {"S": math.pi * 1.5**2 / 48.0}
    assert p.fractions()["S"] == pytest.approx(exact["S"], abs=0.01)  # a voxel layer around the disk
    assert p.fractions() == pytest.approx(out["voxel_fractions"])


def test_pixel_smoothing_shortens_the_staircase_and_keeps_the_area():
    """A disk of 26 pixels radius: the pixel staircase is 4/pi too long; smoothed within 7 %,
    the enclosed area unchanged within 0.2 %, no inverted triangle."""
    from fem.geometry.pixels import _edges, _signed_areas, smooth_boundaries, triangulate

    n, r = 80, 26.0
    c = np.arange(n) + 0.5 - n / 2
    X, Y = np.meshgrid(c, c, indexing="ij")
    img = np.where(X**2 + Y**2 <= r * r, tags.S, tags.SE)
    points, tris, ct = triangulate(img, (1.0, 1.0))
    smooth, _ = smooth_boundaries(points, tris, ct, np.zeros(len(points), bool))

    def perimeter(x):
        e, a, b = _edges(tris, ct)
        keep = (b >= 0) & (a != b)
        return np.linalg.norm(x[e[keep, 1]] - x[e[keep, 0]], axis=1).sum()

    exact = 2 * math.pi * r
    assert perimeter(points) / exact > 1.2
    assert abs(perimeter(smooth) / exact - 1) < 0.07
    area = np.abs(_signed_areas(smooth, tris))[ct == tags.S].sum()
    assert area == pytest.approx(np.count_nonzero(img == tags.S), rel=2e-3)
    assert (_signed_areas(smooth, tris) * np.sign(_signed_areas(points, tris)) > 0).all()


def test_a_bad_image_stops_the_run_before_meshing(tmp_path):
    """fem.mesh.inputs.check_inputs (what fem.Simulation and `check` call) reads the image."""
    from fem.mesh.inputs import check_inputs

    a = np.full((10, 10), 2, np.uint8)
    a[2:5, 2:5] = 5  # S away from the collector, no C: never electronically connected
    np.save(tmp_path / "a.npy", a)
    case = tmp_path / "case.toml"
    case.write_text('[geometry.image]\nfile = "a.npy"\nvoxel_um = 0.5\nlabels = {S = 1, SE = 2}\n')
    errors = check_inputs(load_case(case))
    assert len(errors) == 1 and "geometry.image: image values [5] are not in geometry.image.labels" in errors[0]
    case.write_text('[geometry.image]\nfile = "a.npy"\nvoxel_um = 0.5\nlabels = {S = 5, SE = 2}\n')
    assert "geometry.image: the image does not percolate" in check_inputs(load_case(case))[0]
