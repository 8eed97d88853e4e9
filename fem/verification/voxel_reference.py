"""An independent effective-conductivity solver on voxel images (finite volumes, scipy only).

The reference against which the finite-element effective properties of an imported image
(fem.studies.effective on the image's mesh) are checked: cell-centred finite volumes on the
voxels of the cathode layer, conductance between face neighbours the harmonic mean of their
conductivities (zero when either does not conduct), u = 0 on the face x = s and u = 1 on
x = Lx (half a voxel from the first and last centres), insulating lateral faces. As in
TauFactor, only face neighbours conduct; voxels not face-connected to either face are dropped
(they carry no current and would make the matrix singular). k_eff / k_bulk = I L / A with I
the current through x = Lx. The finite-element mesh of the same image connects voxels that
share only an edge or a corner, so the two agree only up to a discretisation error that
vanishes under refinement of the voxels (`refine`), which a resolution study shows.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve


def refine(labels: np.ndarray, factor: int) -> np.ndarray:
    """Each voxel split into factor^d equal voxels (the same geometry at a finer resolution)."""
    for axis in range(labels.ndim):
        labels = np.repeat(labels, factor, axis=axis)
    return labels


def effective_conductivity(sigma: np.ndarray, voxel_um=1.0) -> float:
    """k_eff / k_bulk across axis 0 of the conductivity image `sigma` (relative to the bulk)."""
    sigma = np.asarray(sigma, float)
    d = sigma.ndim
    h = np.broadcast_to(np.asarray(voxel_um, float), (d,))
    conducting = sigma > 0
    face = ndimage.generate_binary_structure(d, 1)
    lab, _ = ndimage.label(conducting, structure=face)
    keep = np.zeros(lab.max() + 1, bool)
    keep[np.unique(lab[0])] = True
    keep[np.unique(lab[-1])] = True
    keep[0] = False
    active = keep[lab]
    if not (active[0].any() and active[-1].any()):
        return 0.0
    index = np.full(sigma.shape, -1, np.int64)
    index[active] = np.arange(np.count_nonzero(active))
    n = int(active.sum())
    rows, cols, vals = [], [], []
    diag = np.zeros(n)
    rhs = np.zeros(n)
    for axis in range(d):
        area = float(np.prod(np.delete(h, axis)))
        a = [slice(None)] * d
        b = [slice(None)] * d
        a[axis], b[axis] = slice(0, -1), slice(1, None)
        sa, sb = sigma[tuple(a)], sigma[tuple(b)]
        both = active[tuple(a)] & active[tuple(b)]
        g = np.where(both, 2 * sa * sb / np.where(both, sa + sb, 1.0), 0.0) * area / h[axis]
        ia, ib, g = index[tuple(a)][both], index[tuple(b)][both], g[both]
        rows += [ia, ib]
        cols += [ib, ia]
        vals += [-g, -g]
        np.add.at(diag, ia, g)
        np.add.at(diag, ib, g)
    # the two Dirichlet faces, half a voxel away from the first and last centres
    area_x = float(np.prod(h[1:]))
    g0 = 2 * sigma[0] * area_x / h[0]
    g1 = 2 * sigma[-1] * area_x / h[0]
    i0, i1 = index[0][active[0]], index[-1][active[-1]]
    np.add.at(diag, i0, g0[active[0]])
    np.add.at(diag, i1, g1[active[-1]])
    np.add.at(rhs, i1, g1[active[-1]] * 1.0)
    A = coo_matrix((np.concatenate(vals + [diag]), (np.concatenate(rows + [np.arange(n)]),
                                                     np.concatenate(cols + [np.arange(n)]))), shape=(n, n)).tocsr()
    u = spsolve(A, rhs)
    current = float((g1[active[-1]] * (1.0 - u[i1])).sum())
    length = sigma.shape[0] * h[0]
    cross = float(np.prod(np.asarray(sigma.shape[1:]) * h[1:]))
    return current * length / cross


def phase_conductivity(labels: np.ndarray, sigma_by_tag: dict[int, float]) -> np.ndarray:
    """The conductivity image of a label image (cell tags -> relative conductivity, others 0)."""
    out = np.zeros(labels.shape)
    for tag, s in sigma_by_tag.items():
        out[labels == tag] = s
    return out
