"""One synthetic field of view: cells placed, four channels drawn, photographed.

Small images are drawn at twice their size and averaged down, so that thin
structures stay smooth instead of turning into jagged single pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hpa_classify.classes import NUM_CLASSES
from hpa_classify.data.synth.crowd import build_crowded_field
from hpa_classify.data.synth.drawing import smooth_noise
from hpa_classify.data.synth.geometry import Field, build_field
from hpa_classify.data.synth.optics import expose, illumination, optics, robust_peak
from hpa_classify.data.synth.patterns import NUCLEAR_CLASSES, green_pattern
from hpa_classify.data.synth.reference import (
    draw_microtubules,
    er_structure,
    render_blue,
    render_red,
)
from hpa_classify.errors import ConfigError

#: Smallest image side the renderer accepts.
MIN_SIZE = 32


def _draw_green(
    fld: Field, ids: list[int], rng: np.random.Generator, keep: dict[int, np.ndarray] | None = None
) -> np.ndarray:
    """The protein: each class's pattern at its own strength, times each cell's expression.

    ``keep``, when given, receives each class's drawing (at the drawing
    resolution, before strength and expression); the draws are the same either way.
    """
    green = np.zeros((fld.size, fld.size), np.float32)
    amps = rng.uniform(0.45, 1.0, len(ids))
    if ids:
        amps[rng.integers(len(ids))] = 1.0
    meta = fld.metaphase()
    for c, a in zip(ids, amps, strict=True):
        pattern = green_pattern(c)(fld, rng).astype(np.float32)
        if c in NUCLEAR_CLASSES:
            pattern = pattern + 0.15 * meta  # the nucleus has dispersed in mitosis
        if fld.version >= 2:  # only the cells that express this class show it
            pattern = pattern * fld.per_cell([c in cell.shows for cell in fld.cells], background=1.0)
        if keep is not None:
            keep[int(c)] = pattern
        green += a * pattern
    green *= fld.per_cell([c.expression for c in fld.cells], background=1.0)
    inside = fld.lab > 0
    green += inside * rng.uniform(0.0, 0.06) * (1 + 0.3 * smooth_noise(rng, fld.size, fld.px(10)))
    return green


def _photograph(
    fld: Field,
    planes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    labelled: bool,
    size: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Blur, scale down to ``size`` and expose the red, green, blue and yellow drawings."""
    red, green, blue, yellow = planes
    blur = fld.px(rng.uniform(0.5, 1.1), 0.35)
    blur_g = fld.px(rng.uniform(0.5, 1.1), 0.35)
    green = optics(green, blur_g, size)
    if labelled:  # exposure set by the protein's bright structures; no labels: background only
        green /= robust_peak(green)
    light = illumination(rng, size)
    green_gain = rng.uniform(130, 250) if rng.random() > 0.15 else rng.uniform(40, 110)
    return np.stack(
        [
            expose(optics(red, blur, size), rng.uniform(110, 210), light, rng),
            expose(green, green_gain, light, rng),
            expose(optics(blue, blur, size), rng.uniform(120, 220), light, rng),
            expose(optics(yellow, blur, size), rng.uniform(100, 200), light, rng),
        ]
    )


def render_field(
    labels: Sequence[int],
    size: int,
    rng: np.random.Generator,
    patterns: dict[int, np.ndarray] | None = None,
    version: int = 1,
) -> tuple[np.ndarray, Field]:
    """Render a field; also return its geometry (at the drawing resolution).

    ``patterns``, when given, receives each class's green drawing (see :func:`_draw_green`).
    ``version`` 2 draws a crowded field (:mod:`hpa_classify.data.synth.crowd`).
    """
    work = 2 * size if size <= 192 else size
    build = build_crowded_field if version >= 2 else build_field
    fld = build(labels, work, rng)
    draw_microtubules(fld, rng)
    fld.er = er = er_structure(fld, rng)
    red = render_red(fld, rng)
    yellow = er * fld.per_cell([c.yellow for c in fld.cells])
    blue = render_blue(fld, rng)
    ids = sorted(set(int(c) for c in labels))
    green = _draw_green(fld, ids, rng, patterns)
    return _photograph(fld, (red, green, blue, yellow), bool(ids), size, rng), fld


def render_sample(labels: list[int], size: int, rng: np.random.Generator, version: int = 1) -> np.ndarray:
    """Render one synthetic four-channel field whose green protein shows ``labels``.

    Parameters
    ----------
    labels : list of int
        Class ids 0-27 (every cell of the field shows all of them).
    size : int
        Side of the square image in pixels, at least 32.
    rng : numpy.random.Generator
        Source of randomness; the image is a pure function of its state.
    version : int
        1: a few cells that all show ``labels``; 2: 10 to 40 crowded cells of
        which some show none or a subset (:mod:`hpa_classify.data.synth.crowd`).

    Returns
    -------
    numpy.ndarray
        ``(4, size, size)`` uint8 in channel order red, green, blue, yellow
        (:data:`hpa_classify.classes.CHANNELS`).

    Examples
    --------
    >>> img = render_sample([2], 64, np.random.default_rng(0))
    >>> img.dtype.name, img.shape
    ('uint8', (4, 64, 64))
    """
    if size < MIN_SIZE:
        raise ConfigError(f"image size must be >= {MIN_SIZE} px, got {size}")
    for c in labels:
        if not 0 <= int(c) < NUM_CLASSES:
            raise ConfigError(f"class {c} out of range 0-{NUM_CLASSES - 1}")
    check_version(version)
    image, _ = render_field(labels, size, rng, version=version)
    return image


#: Versions of the generator (see :func:`render_sample`).
VERSIONS = (1, 2)
#: The drawing's revision within each version. A dataset written by another revision
#: is regenerated, not reused (:func:`hpa_classify.data.synth.matches`). Version 2,
#: revision 2: the mitochondria and cytosol decoys lie on sides of each cell set by the
#: ER's (opposite it, and across its edge) instead of sides of their own; revision 3: the
#: peroxisomes, endosomes and lysosomes are one kind of vesicle placed the same three ways.
REVISIONS = {1: 1, 2: 3}


def check_version(version: int) -> None:
    """A :class:`ConfigError` unless ``version`` is one of :data:`VERSIONS`."""
    if version not in VERSIONS:
        raise ConfigError(f"synthetic data version must be one of {list(VERSIONS)}, got {version}")
