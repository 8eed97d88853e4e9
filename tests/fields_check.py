"""Checks of a run's fields.xdmf / fields.h5 / interfaces.xdmf read back with h5py (no DOLFINx)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np

from fem import tags

POINT_ARRAYS = ["x", "phi_e", "phi_s", "i_reaction", "phi_e_pockets"]


def vertices_of(cells: np.ndarray, n: int) -> np.ndarray:
    v = np.zeros(n, dtype=bool)
    v[cells.ravel()] = True
    return v


def joined(cells: np.ndarray, chosen: np.ndarray, seeds: np.ndarray, n: int) -> np.ndarray:
    """The chosen cells joined through shared vertices (among chosen cells) to a seed vertex."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m, k = cells.shape
    rows = np.repeat(np.flatnonzero(chosen), k)
    graph = coo_matrix((np.ones(rows.size), (rows, m + cells[chosen].ravel())), shape=(m + n, m + n))
    _, label = connected_components(graph, directed=False)
    return chosen & np.isin(label[:m], label[m + np.unique(seeds)])


def check_fields(out: Path) -> dict:
    """Assert the layout and masking of the field files; returns numbers for the caller."""
    grids = ET.parse(out / "fields.xdmf").getroot().find("Domain").findall("Grid")
    assert len(grids) == 1 and grids[0].get("CollectionType") == "Temporal"
    steps = grids[0].findall("Grid")
    times = [float(g.find("Time").get("Value")) for g in steps]
    assert len(times) >= 2 and times[0] == 0.0 and np.all(np.diff(times) > 0)
    for g in steps:
        # one grid per time: the same geometry and topology, x first, the phase as a cell array
        assert g.find("Topology/DataItem").text == "fields.h5:/Mesh/mesh/topology"
        assert g.find("Geometry/DataItem").text == "fields.h5:/Mesh/mesh/geometry"
        names = [(a.get("Name"), a.get("Center")) for a in g.findall("Attribute")]
        assert names == [(n, "Node") for n in POINT_ARRAYS] + [("phase", "Cell")]
    counts = {}
    with h5py.File(out / "fields.h5", "r") as f:
        points = f["Mesh/mesh/geometry"][...]
        cells = f["Mesh/mesh/topology"][...]
        phase = f["MeshTags/phase/values"][...]
        network = f["MeshTags/phase/se_network"][...].astype(bool)
        facets = f["MeshTags/interfaces/topology"][...]
        facet_tags = f["MeshTags/interfaces/values"][...]
        n = len(points)
        assert cells.min() == 0 and cells.max() == n - 1  # every point is a vertex of a cell
        assert set(np.unique(phase)) <= {tags.S, tags.SE, tags.C, tags.VOID} and tags.S in phase
        assert {tags.S_SE, tags.ANODE, tags.COLLECTOR} <= set(np.unique(facet_tags))
        assert set(np.unique(facet_tags)) <= set(tags.FACET_TAGS.values())
        # the anode network: every SE cell on the anode face is in it, and it is closed under
        # shared vertices among SE cells (a cut-off pocket shares no vertex with it)
        se = phase == tags.SE
        anode_v = vertices_of(facets[facet_tags == tags.ANODE], n)
        assert np.all(network[se & anode_v[cells].any(axis=1)]) and not np.any(network & ~se)
        net_v = vertices_of(cells[network], n)
        assert not np.any(se & ~network & net_v[cells].any(axis=1))
        assert np.array_equal(network, joined(cells, se, facets[facet_tags == tags.ANODE], n))
        # a potential may also be pinned (inactive) on a network of its phases that no boundary
        # condition or reaction reaches (it floats): those vertices may be NaN or not; every
        # vertex of an anchored cell must be finite, every vertex touching no cell of the
        # field's phases NaN
        solid = (phase == tags.S) | (phase == tags.C)
        s_se = facets[facet_tags == tags.S_SE]
        collector = facets[facet_tags == tags.COLLECTOR]
        anchored_s = joined(cells, solid, np.concatenate([s_se.ravel(), collector.ravel()]), n)
        anchored_e = joined(cells, se, np.concatenate([s_se.ravel(), facets[facet_tags == tags.ANODE].ravel()]), n)
        # (must be finite, may be finite)
        should = {"x": (vertices_of(cells[phase == tags.S], n),) * 2,
                  "phi_s": (vertices_of(cells[anchored_s], n), vertices_of(cells[solid], n)),
                  "phi_e": (net_v, net_v),
                  "phi_e_pockets": (vertices_of(cells[anchored_e & ~network], n), vertices_of(cells[se & ~network], n)),
                  "i_reaction": (vertices_of(s_se, n),) * 2}
        for t in times:
            key = repr(t).replace(".", "_")
            for name in POINT_ARRAYS:
                values = f[f"Function/{name}/{key}"][...]
                assert values.shape == (n,)
                finite = np.isfinite(values)
                must, may = should[name]
                assert np.all(finite[must]), (name, t, np.count_nonzero(must & ~finite))
                assert not np.any(finite & ~may), (name, t, np.count_nonzero(finite & ~may))
            x = f[f"Function/x/{key}"][...][should["x"][0]]
            assert np.all((x > 0) & (x < 1))
        counts["times"] = times
        counts["points"], counts["cells"] = n, len(cells)
        s_boundary = vertices_of(facets[np.isin(facet_tags, (tags.S_SE, tags.S_C))], n)
        counts["x_nan_on_S_boundary"] = int(np.count_nonzero(~np.isfinite(f[f"Function/x/{key}"][...][s_boundary])))
        counts["S_boundary_vertices"] = int(np.count_nonzero(s_boundary))
        counts["i_reaction_end"] = f[f"Function/i_reaction/{key}"][...]
        counts["x_end"] = f[f"Function/x/{key}"][...]
        counts["network_cells"], counts["se_cells"] = int(network.sum()), int(se.sum())
        counts["floating_se_cells"] = int(np.count_nonzero(se & ~anchored_e))
    # interfaces.xdmf: the tagged facets on the same points
    grid = ET.parse(out / "interfaces.xdmf").getroot().find("Domain/Grid")
    assert grid.find("Topology/DataItem").text == "fields.h5:/MeshTags/interfaces/topology"
    assert int(grid.find("Topology").get("NumberOfElements")) == len(facets)
    assert [a.get("Name") for a in grid.findall("Attribute")] == ["interface"]
    return counts
