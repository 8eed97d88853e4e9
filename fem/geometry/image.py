"""Segmented images as cathode geometry: import, percolation check, distance to carbon, export.

An image is a voxel array (2D or 3D) whose values are mapped to phases by [geometry.image]
labels. Voxels are cells: voxel i covers [i h, (i + 1) h] and its value holds at its centre.
After import the array is oriented to the project's frame (MODEL.md section 1): array axis 0 is
x, the through-thickness axis, the collector at the last index (x = Lx); a dense SE separator
is prepended unless the image holds one. The result, an `ImagePacking`, stands where a particle
packing stands: it has the box and the separator, `distance_to_carbon` from a Euclidean distance
transform of the image, and the voxel grid that fem.geometry.percolation measures.
Beside a mesh, its JSON records the image source (and `<mesh>.labels.npy` the oriented labels)
instead of a particle list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import ndimage

from fem import tags
from fem.geometry.packing import Packing
from fem.geometry.percolation import CODES, VoxelGrid

PHASES = ("S", "SE", "C", "void")
TAG_TO_CODE = np.zeros(max(tags.CELL_TAGS.values()) + 1, dtype=np.int8)  # cell tag -> percolation code
for _name, _tag in tags.CELL_TAGS.items():
    TAG_TO_CODE[_tag] = CODES[_name]
CODE_TO_TAG = np.array([tags.SE, tags.VOID, tags.S, tags.C], dtype=np.uint8)
# majority ties in downsampling: C > S > void > SE, the priority of the packings
_TIE = {tags.C: 3e-3, tags.S: 2e-3, tags.VOID: 1e-3, tags.SE: 0.0}
LABELS_SUFFIX = ".labels.npy"


class ImageError(ValueError):
    """A segmented image that cannot be used; the message says what to change."""


# --- reading -----------------------------------------------------------------------------

def read_array(path: Path, header_file: Path | None = None) -> np.ndarray:
    """The raw value array of an image file (.npy, .tif/.tiff, a folder of .tif, .raw + JSON header)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
        if not files:
            raise ImageError(f"geometry.image.file: the folder {path} holds no .tif/.tiff slices")
        import tifffile

        arr = np.stack([tifffile.imread(str(f)) for f in files])
    elif path.suffix.lower() == ".npy":
        arr = np.load(path, allow_pickle=False)
    elif path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        arr = tifffile.imread(str(path))
    elif path.suffix.lower() == ".raw":
        header = Path(header_file) if header_file is not None else path.with_suffix(".json")
        try:
            head = json.loads(header.read_text())
            shape, dtype = [int(n) for n in head["shape"]], np.dtype(head.get("dtype", "uint8"))
            order, offset = head.get("order", "C"), int(head.get("offset_bytes", 0))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ImageError(f"geometry.image.header_file {header}: needs JSON like "
                             f'{{"shape": [nz, ny, nx], "dtype": "uint8", "order": "C"}} ({err})') from None
        data = np.fromfile(path, dtype=dtype, offset=offset)
        if data.size != int(np.prod(shape)):
            raise ImageError(f"geometry.image.file {path}: holds {data.size} values of {dtype}, the header's "
                             f"shape {shape} needs {int(np.prod(shape))}")
        arr = data.reshape(shape, order=order)
    else:
        raise ImageError(f"geometry.image.file {path}: unknown format (use .npy, .tif/.tiff, .raw or a folder)")
    arr = np.asarray(arr)
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ImageError(f"geometry.image.file {path}: a segmented image has integer labels, got {arr.dtype}")
    arr = arr.squeeze()
    if arr.ndim not in (2, 3):
        raise ImageError(f"geometry.image.file {path}: a 2D or 3D label array is needed, got shape {arr.shape} "
                         "(colour images: segment them into one label per voxel first)")
    return arr


def map_labels(arr: np.ndarray, labels: dict) -> np.ndarray:
    """Image values -> cell tags (uint8); an unmapped value is an error naming every one."""
    lut_keys, lut_vals = [], []
    for phase, value in labels.items():
        for v in value if isinstance(value, list) else [value]:
            lut_keys.append(int(v))
            lut_vals.append(tags.CELL_TAGS[phase])
    present = np.unique(arr)
    missing = sorted(int(v) for v in present if int(v) not in lut_keys)
    if missing:
        counts = {v: int(np.count_nonzero(arr == v)) for v in missing[:10]}
        raise ImageError(f"image values {missing} are not in geometry.image.labels "
                         f"({_label_text(labels)}); voxels per value: {counts}. Map each to S, SE, C or void")
    keys, vals = np.array(lut_keys), np.array(lut_vals, dtype=np.uint8)
    order = np.argsort(keys)
    return vals[order][np.searchsorted(keys[order], arr)]


def _label_text(labels: dict) -> str:
    return ", ".join(f"{k} = {v}" for k, v in labels.items())


def downsample(t: np.ndarray, factor: int) -> np.ndarray:
    """Blocks of factor^d voxels -> their majority phase (ties: C > S > void > SE); a remainder
    of fewer than `factor` voxels at the end of an axis is dropped."""
    if factor == 1:
        return t
    n = [s // factor for s in t.shape]
    if min(n) == 0:
        raise ImageError(f"geometry.image.downsample = {factor} is larger than the image {t.shape}")
    t = t[tuple(slice(0, k * factor) for k in n)]
    shape = [x for k in n for x in (k, factor)]
    best, best_count = None, None
    for tag in tags.CELL_TAGS.values():
        count = (t == tag).reshape(shape).sum(axis=tuple(range(1, 2 * len(n), 2))) + _TIE[tag]
        if best is None:
            best, best_count = np.full(n, tag, np.uint8), count
        else:
            win = count > best_count
            best[win], best_count = tag, np.where(win, count, best_count)
    return best


def image_from_config(geo) -> ImagePacking:
    """The case's [geometry.image] read, mapped, cropped, downsampled, oriented and given its
    separator; raises ImageError (a ValueError) with what to change."""
    im = geo.image
    arr = read_array(im.file, im.header_file)
    if im.crop:
        if len(im.crop) > arr.ndim:
            raise ImageError(f"geometry.image.crop has {len(im.crop)} ranges for a {arr.ndim}D image {arr.shape}")
        for axis, (lo, hi) in enumerate(im.crop):
            if hi > arr.shape[axis]:
                raise ImageError(f"geometry.image.crop[{axis}] = [{lo}, {hi}] reaches beyond the image's "
                                 f"{arr.shape[axis]} voxels along axis {axis} (shape {arr.shape})")
        arr = arr[tuple(slice(lo, hi) for lo, hi in im.crop)]
    if im.thickness_axis >= arr.ndim:
        raise ImageError(f"geometry.image.thickness_axis = {im.thickness_axis} does not exist in the "
                         f"{arr.ndim}D image of shape {arr.shape}")
    t = downsample(map_labels(arr, im.labels), im.downsample)
    h = im.voxel_um * im.downsample
    t = np.moveaxis(t, im.thickness_axis, 0)
    if im.collector == "first":
        t = t[::-1]
    n_sep = int(round(geo.separator_um / h))
    if im.separator == "pad":
        t = np.concatenate([np.full((n_sep,) + t.shape[1:], tags.SE, np.uint8), t])
    else:
        bad = np.count_nonzero(t[:n_sep] != tags.SE)
        if n_sep >= t.shape[0] or bad:
            raise ImageError(f"geometry.image.separator = 'image': the first geometry.separator_um = "
                             f"{geo.separator_um:g} um ({n_sep} slices) must be dense SE, but "
                             f"{bad / max(t[:n_sep].size, 1):.1%} of them are not SE (or the image is thinner); "
                             "use separator = 'pad' or a smaller geometry.separator_um")
    if n_sep == 0 or t.shape[0] - n_sep < 2:
        raise ImageError(f"the separator ({geo.separator_um:g} um) and the cathode layer need at least one and "
                         f"two voxels of {h:g} um along x; the layer has {t.shape[0] - n_sep}")
    source = {"file": str(im.file), "labels": im.labels, "voxel_um": im.voxel_um, "downsample": im.downsample,
              "crop": im.crop, "thickness_axis": im.thickness_axis, "collector": im.collector,
              "separator": im.separator}
    return ImagePacking.from_labels(np.ascontiguousarray(t), h, n_sep * h, source)


# --- the image as a packing --------------------------------------------------------------

@dataclass(eq=False)
class ImagePacking(Packing):
    """A cathode defined by a label image (cell tags, x = axis 0) instead of particles.

    voxel_um: edge per axis; the box is shape * voxel_um, voxel centres at (i + 1/2) voxel_um.
    """

    voxel_um: tuple = ()
    labels_file: Path | None = None  # where the labels are read from when not in memory
    image: dict = field(default_factory=dict)  # the source: file, label map, crop, ...
    _labels: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_labels(cls, labels: np.ndarray, voxel_um: float, separator_um: float, image: dict) -> ImagePacking:
        h = (float(voxel_um),) * labels.ndim
        box = tuple(float(n * v) for n, v in zip(labels.shape, h))
        return cls(labels.ndim, box, float(separator_um), [], {}, voxel_um=h, image=image,
                   _labels=labels.astype(np.uint8))

    @property
    def labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = np.load(self.labels_file, allow_pickle=False)
            if self._labels.shape != self.shape:
                raise ImageError(f"{self.labels_file}: shape {self._labels.shape} does not match the box "
                                 f"{self.box_um} / voxel {self.voxel_um}")
        return self._labels

    @property
    def shape(self) -> tuple:
        return tuple(int(round(b / h)) for b, h in zip(self.box_um, self.voxel_um))

    @property
    def n_separator(self) -> int:
        return int(round(self.separator_um / self.voxel_um[0]))

    def to_dict(self) -> dict:
        return super().to_dict() | {"image": {"labels_file": Path(self.labels_file).name if self.labels_file else None,
                                              "voxel_um": list(self.voxel_um), "source": self.image}}

    def to_json(self, path) -> None:
        """The JSON beside a mesh and its labels, <name>.labels.npy, beside it."""
        path = Path(path)
        labels = self.labels
        self.labels_file = path.with_name(path.stem + LABELS_SUFFIX)
        np.save(self.labels_file, labels)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data, source: str = "packing") -> ImagePacking:
        im = data.get("image")
        if not isinstance(im, dict) or not im.get("labels_file") or "voxel_um" not in im:
            raise ValueError(f"{source}: 'image' must be an object with labels_file and voxel_um")
        base = Packing.from_dict({k: v for k, v in data.items() if k != "image"}, source)
        folder = Path(source).parent if source != "packing" else Path(".")
        if not (folder / im["labels_file"]).is_file():
            raise ValueError(f"{source}: the image labels {folder / im['labels_file']} must lie beside it")
        return cls(base.dimension, base.box_um, base.separator_um, [], base.meta,
                   voxel_um=tuple(float(v) for v in im["voxel_um"]), labels_file=folder / im["labels_file"],
                   image=im.get("source", {}))

    # the cathode layer (x >= separator), as fem.geometry.percolation measures it
    def voxel_grid(self, voxel_um: float | None = None) -> VoxelGrid:
        """Percolation codes of the layer's voxels (the image's own resolution; voxel_um is ignored)."""
        layer = self.labels[self.n_separator:]
        grid = VoxelGrid.__new__(VoxelGrid)
        grid.n = np.array(layer.shape)
        grid.h_um = np.array(self.voxel_um, float)
        grid.lo_um = np.array([self.separator_um] + [0.0] * (self.dimension - 1))
        grid.axes_um = [grid.lo_um[i] + (np.arange(grid.n[i]) + 0.5) * grid.h_um[i] for i in range(self.dimension)]
        grid.codes = TAG_TO_CODE[layer]
        grid.counts = np.bincount(grid.codes.ravel(), minlength=4).astype(np.int64)
        return grid

    def fractions(self) -> dict:
        return self.voxel_grid().fractions()

    @cached_property
    def _carbon_distance(self) -> np.ndarray | None:
        """Distance (um) from voxel centres to the carbon surface (the nearest carbon voxel centre
        less half a voxel), 0 in carbon; None without carbon."""
        carbon = self.labels == tags.C
        if not carbon.any():
            return None
        d = ndimage.distance_transform_edt(~carbon, sampling=self.voxel_um)
        return np.where(carbon, 0.0, np.maximum(d - 0.5 * min(self.voxel_um), 0.0))

    def distance_to_carbon(self, points_um: np.ndarray) -> np.ndarray:
        """Distance (um) to the nearest carbon, 0 inside carbon, +inf without carbon: the image's
        Euclidean distance transform, interpolated linearly between voxel centres (accuracy
        about half a voxel)."""
        pts = np.asarray(points_um, dtype=float)[:, : self.dimension]
        d = self._carbon_distance
        if d is None:
            return np.full(len(pts), np.inf)
        index = (pts / np.asarray(self.voxel_um) - 0.5).T
        return np.maximum(ndimage.map_coordinates(d, index, order=1, mode="nearest"), 0.0)


# --- checks and reports ------------------------------------------------------------------

def percolation_report(packing: ImagePacking) -> dict:
    """The connected fractions of the layer (fem.geometry.percolation, face connectivity)."""
    return packing.voxel_grid().connectivity()


def check_percolation(packing: ImagePacking) -> dict:
    """The connected fractions; ImageError when a simulation of this image would be meaningless:
    no S both electronically and ionically connected, no C reaching the collector (if C is
    present), or no SE reaching the separator."""
    conn = percolation_report(packing)
    fractions = packing.fractions()
    problems = []
    if fractions["S"] == 0:
        problems.append("the layer holds no S")
    elif conn["S_active"] == 0:
        problems.append("no S is connected both to the collector (through C) and to the separator (through SE)")
    if fractions["C"] > 0 and conn["C_connected_to_collector"] == 0:
        problems.append("no C reaches the collector face")
    if conn["SE_connected_to_separator"] == 0:
        problems.append("no SE reaches the separator")
    if problems:
        shown = {k: round(v, 4) for k, v in conn.items()}
        raise ImageError("the image does not percolate: " + "; ".join(problems) +
                         f". Connected fractions (face connectivity): {shown}; volume fractions "
                         f"{ {k: round(v, 4) for k, v in fractions.items()} }. Check geometry.image.labels, "
                         "thickness_axis and collector (or set check_percolation = false)")
    return conn


def staircase_areas(labels: np.ndarray, voxel_um) -> dict:
    """Interface areas (um^2, lengths in 2D) counted on the voxel faces of the image, and the
    isotropic estimate of the smooth surfaces: a staircase overestimates a randomly oriented
    surface by the mean of |n_x| + |n_y| (+ |n_z|), 4/pi in 2D and 3/2 in 3D (Cauchy-Crofton)."""
    d = labels.ndim
    h = np.asarray(voxel_um, float)
    out = dict.fromkeys(("S|SE", "S|C", "C|SE"), 0.0)
    names = {v: k for k, v in tags.FACET_TAGS.items()}
    for axis in range(d):
        a = np.take(labels, range(labels.shape[axis] - 1), axis=axis)
        b = np.take(labels, range(1, labels.shape[axis]), axis=axis)
        face = float(np.prod(np.delete(h, axis)))
        diff = a != b
        pairs = np.stack([np.minimum(a[diff], b[diff]), np.maximum(a[diff], b[diff])], axis=1)
        keys, counts = np.unique(pairs, axis=0, return_counts=True)
        for (lo, hi), n in zip(keys, counts):
            t = tags.interface_tag(int(lo), int(hi))
            if t is not None:
                out[names[t]] += n * face
    factor = 4 / np.pi if d == 2 else 1.5
    return {"staircase": out, "isotropic_estimate": {k: v / factor for k, v in out.items()},
            "staircase_factor": factor}


# --- export ------------------------------------------------------------------------------

def packing_labels(packing: Packing, voxel_um: float, layer_only: bool = True) -> np.ndarray:
    """Cell tags at the centres of voxels of edge voxel_um over the cathode layer (or the whole
    box): the voxel image of a generated packing (priority C > S > void > SE)."""
    from fem.geometry.percolation import voxelize

    if isinstance(packing, ImagePacking):
        return packing.labels[packing.n_separator:] if layer_only else packing.labels
    lo = packing.separator_um if layer_only else 0.0
    grid = voxelize(Packing(packing.dimension, packing.box_um, lo, packing.particles), voxel_um)
    codes = grid.codes
    if not layer_only:
        codes[grid.axes_um[0] < packing.separator_um] = CODES["SE"]  # the separator is dense SE
    return CODE_TO_TAG[codes]


def export_tiff(packing: Packing, path: Path, voxel_um: float) -> dict:
    """Write the packing's cathode layer as a segmented TIFF (multi-page in 3D, one page per x
    slice; the project's label map S=1, SE=2, C=3, void=4); returns the [geometry.image] keys
    that read it back, with the voxel fractions."""
    import tifffile

    labels = packing_labels(packing, voxel_um)
    lengths = (packing.box_um[0] - packing.separator_um,) + tuple(packing.box_um[1:])
    h_axes = [length / n for length, n in zip(lengths, labels.shape)]
    h = h_axes[0]
    keys = {"file": str(path), "voxel_um": float(h), "labels": dict(tags.CELL_TAGS), "thickness_axis": 0,
            "collector": "last", "separator": "pad"}
    # an image has cubic voxels: the box is n * h along every axis (off by box_mismatch_um)
    off = max(abs(n * h - length) for n, length in zip(labels.shape, lengths))
    meta = {"asslsb": keys | {"separator_um": packing.separator_um, "shape": list(labels.shape)}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # a description that is not bare JSON: tifffile would take JSON for its own shape metadata
    tifffile.imwrite(str(path), labels, description="asslsb-fem segmented image " + json.dumps(meta), metadata=None)
    counts = np.bincount(labels.ravel(), minlength=5) / labels.size
    return {"image": keys, "shape": list(labels.shape), "box_mismatch_um": float(off),
            "voxel_um_per_axis": [float(v) for v in h_axes],
            "voxel_fractions": {ph: float(counts[t]) for ph, t in tags.CELL_TAGS.items()}}


# --- meshing -----------------------------------------------------------------------------

MAX_SMOOTHED_VOXELS = 30_000_000  # the label smoothing samples at half a voxel below this size


def smoothed_labels(labels: np.ndarray, sigma_voxels: float) -> tuple[np.ndarray, int]:
    """(labels on a grid refined by 2 where affordable, the refinement): each phase's indicator
    smoothed by a Gaussian of sigma_voxels, interpolated to half-voxel cells and given to the
    phase whose smoothed indicator is largest. The boundaries then run between half-voxel
    samples along the smoothed surfaces, not along the voxel staircase; a feature thinner
    than about sigma voxels can vanish."""
    refine = 2 if labels.size * 2**labels.ndim <= MAX_SMOOTHED_VOXELS else 1
    best, best_value = None, None
    for tag in np.unique(labels):
        field = ndimage.gaussian_filter((labels == tag).astype(np.float32), sigma_voxels, mode="nearest")
        if refine > 1:
            field = ndimage.zoom(field, refine, order=1, mode="nearest", grid_mode=True)
        if best is None:
            best, best_value = np.full(field.shape, tag, np.uint8), field
        else:
            win = field > best_value
            best[win] = tag
            best_value = np.where(win, field, best_value)
    return best, refine


def build_mesh_image(packing: ImagePacking, mesh, msh_path: Path, verbose: bool = False) -> dict:
    """Mesh an image: 3D through CGAL Mesh_3 (fem.geometry.labelled.mesh_labels) after the label
    smoothing, 2D as smoothed pixel triangles (fem.geometry.pixels); writes msh_path and the
    JSON + labels beside it. Reports image fractions, connectivity, staircase and meshed
    interface areas, cells, quality, time and peak memory."""
    import resource
    import time

    t0 = time.perf_counter()
    sigma = float(packing.image.get("smoothing_voxels", 0.5))
    labels = packing.labels
    h = np.asarray(packing.voxel_um, float)
    if packing.dimension == 2:
        from fem.geometry.pixels import build_mesh_pixels

        report = build_mesh_pixels(packing, msh_path, smooth=sigma > 0)
    else:
        from fem.geometry.labelled import SEPARATOR, mesh_labels

        fine, refine = smoothed_labels(labels, sigma) if sigma > 0 else (labels.copy(), 1)
        fine[: packing.n_separator * refine] = SEPARATOR  # meshed as SE, with the plane x = s as a surface
        hf = h / refine
        # CGAL samples labels at i h; image voxels hold at their centres (i + 1/2) h
        report = {"mesher": "cgal", "smoothing_refinement": refine,
                  **mesh_labels(fine, hf, 0.5 * hf, packing, mesh, msh_path, verbose,
                                 optimise=bool(packing.image.get("optimise", False)))}
    stair = staircase_areas(labels[packing.n_separator - 1:], h)  # with the faces on x = s
    return {
        **report,
        "image_shape": list(labels.shape),
        "voxel_um": float(h.max()),
        "separator_um": packing.separator_um,
        "box_um": list(packing.box_um),
        "volume_fractions": packing.fractions(),
        "connectivity": percolation_report(packing),
        "staircase_interface_areas_um2": stair["staircase"],
        "smooth_estimate_interface_areas_um2": stair["isotropic_estimate"],
        "smoothing_voxels": sigma,
        "seconds": time.perf_counter() - t0,
        "peak_memory_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def check_image(geo) -> list[str]:
    """The problems of the case's image (unmapped values, crop, separator, percolation), for
    fem.mesh.inputs.check_inputs: a bad image stops a run before anything is meshed."""
    try:
        load_image_geometry(geo)
    except (ImageError, OSError) as err:
        return [f"geometry.image: {err}"]
    return []


def load_image_geometry(geo) -> ImagePacking:
    """The case's image as a packing, its percolation checked unless switched off."""
    packing = image_from_config(geo)
    packing.image |= {"smoothing_voxels": geo.image.smoothing_voxels, "optimise": geo.image.optimise}
    if geo.image.check_percolation:
        check_percolation(packing)
    return packing
