"""Green patterns on the cell outline (classes 21 and 22)."""

from __future__ import annotations

import numpy as np

from hpa_classify.data.synth.geometry import Field
from hpa_classify.data.synth.patterns.registry import pattern


@pattern(21)
def plasma_membrane(fld: Field, rng: np.random.Generator) -> np.ndarray:
    band = np.exp(-((fld.edge_dist / fld.px(1.2, 0.7)) ** 2)) * (fld.lab > 0)
    return band + 0.04 * (fld.lab > 0)


@pattern(22)
def cell_junctions(fld: Field, rng: np.random.Generator) -> np.ndarray:
    """Only where two cells touch; class 22 also packs the field densely (geometry)."""
    band = np.exp(-((fld.junction_dist / fld.px(1.2, 0.7)) ** 2)) * (fld.lab > 0)
    return band.astype(np.float32)
