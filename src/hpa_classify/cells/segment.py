"""Nuclei and cells of one field, without trained weights (scikit-image, SciPy, OpenCV).

Nuclei come from the blue channel: smoothed, thresholded (Li's minimum
cross-entropy threshold, which keeps dim nuclei that Otsu's cuts), holes
filled, small specks dropped, and touching nuclei split by a watershed on the
distance transform seeded by its h-maxima; the distance is taken after the
dark seams between touching nuclei (pixels darker than their surroundings)
are cut out, so that nuclei pressed together along a long contact part too. Cells come from a watershed seeded
by the nuclei over the smoothed reference channels (red microtubules, yellow
ER, blue nucleus), inside a foreground mask: each cell grows from its nucleus
until it meets a dark gap or another cell. A cell and its nucleus share one id.

All sizes are in micrometres (:class:`SegmentSettings`). The work runs at
``work_pixel_size`` (0.32 um/px: the sampling of a Kaggle 512 px field) and
the labels are scaled back to the input's size, so a 2048 px field costs
about what a 512 px one does and the same settings serve every size.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_li, threshold_otsu
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from hpa_classify.cells.scale import area_px, check_pixel_size, infer_pixel_size, px
from hpa_classify.classes import CHANNELS
from hpa_classify.errors import HPAError

log = logging.getLogger(__name__)

__all__ = ["Segmentation", "SegmentSettings", "find_nuclei", "segment_cells", "segment_field", "segment_nuclei"]

#: Largest label a uint16 label image holds.
MAX_LABEL = 65535

_RED, _BLUE, _YELLOW = (CHANNELS.index(c) for c in ("red", "blue", "yellow"))


@dataclass(frozen=True)
class SegmentSettings:
    """Settings of the default segmentation; lengths in um, areas in um^2.

    Attributes
    ----------
    pixel_size : float or None
        Pixel size of the input, um/px; None infers it from the image side
        (:func:`~hpa_classify.cells.scale.infer_pixel_size`).
    work_pixel_size : float
        Pixel size the segmentation runs at; finer inputs are shrunk to it.
    nucleus_smooth : float
        Gaussian sigma of the blue channel before thresholding.
    min_nucleus_area : float
        Smaller blobs of the blue channel are not nuclei.
    min_edge_area : float
        Smallest nucleus on the image's edge: the part of a nucleus the edge
        cuts off. (A cell whose nucleus lies wholly outside the image is not
        a cell here, as in HPA's own single-cell masks.)
    min_nucleus_level : float
        Lowest blue threshold (0-255): a field darker than this has no nuclei.
    split_depth : float
        Touching nuclei are split where the distance transform dips by more
        than this between two centres (the h of the h-maxima).
    seam_scale, seam_contrast : float
        Before the distance transform, pixels of the nucleus mask darker than
        ``seam_contrast`` times their surroundings (a Gaussian of sigma
        ``seam_scale``) are cut out: the dark seams between touching nuclei.
        A contrast of 0 cuts nothing.
    nucleus_edge : float
        Each nucleus's outline is then drawn where the blue falls below this
        fraction of the nucleus's own median (0.5: half its brightness, the
        edge of a blurred object); 0 keeps the outline of the global threshold.
    cell_smooth : float
        Gaussian sigma of the reference channels the cells grow over.
    foreground : float
        Cell foreground: reference above this fraction of its Otsu threshold.
    foreground_smooth : float
        Gaussian sigma of the reference channels the foreground is taken from
        (little, so that the cells' edges are not blurred out into the
        background).
    compactness : float
        Compactness of the cells' watershed (scikit-image's): above 0, a
        pixel on a flat stretch goes to the nearer nucleus rather than to
        whichever cell floods it first.
    max_hole_area : float
        Dark holes inside the foreground up to this area belong to the cell.
    """

    pixel_size: float | None = None
    work_pixel_size: float = 0.32
    nucleus_smooth: float = 0.5
    min_nucleus_area: float = 15.0
    min_edge_area: float = 1.5
    min_nucleus_level: float = 4.0
    split_depth: float = 1.0
    seam_scale: float = 3.0
    seam_contrast: float = 0.9
    nucleus_edge: float = 0.5
    cell_smooth: float = 1.0
    foreground: float = 0.4
    foreground_smooth: float = 1.0
    compactness: float = 0.001
    max_hole_area: float = 40.0

    def __post_init__(self) -> None:
        check_pixel_size(self.pixel_size)
        if check_pixel_size(self.work_pixel_size) is None:
            raise HPAError("work_pixel_size must be given")
        for name in ("nucleus_smooth", "min_nucleus_area", "split_depth", "cell_smooth",
                     "foreground", "foreground_smooth", "min_edge_area", "max_hole_area", "min_nucleus_level", "seam_scale", "seam_contrast", "nucleus_edge"):
            if getattr(self, name) < 0:
                raise HPAError(f"segmentation setting {name} must not be negative, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, float | None]:
        """The settings as a plain dict (for a run's record)."""
        return asdict(self)


@dataclass
class Segmentation:
    """Label images of one field at the input's size: 0 is background, cell i holds nucleus i."""

    nuclei: np.ndarray
    cells: np.ndarray
    pixel_size: float

    @property
    def n_cells(self) -> int:
        return int(self.cells.max()) if self.cells.size else 0


def _blur(plane: np.ndarray, sigma_px: float) -> np.ndarray:
    """A float32 Gaussian blur (none for a sigma under 0.3 px)."""
    plane = plane.astype(np.float32, copy=False)
    if sigma_px < 0.3:
        return plane
    return cv2.GaussianBlur(plane, (0, 0), sigmaX=sigma_px, borderType=cv2.BORDER_REFLECT)


def _touching_edge(labels: np.ndarray) -> np.ndarray:
    """Whether each label id (index) has a pixel on the image's edge."""
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    touching = np.zeros(int(labels.max()) + 1, bool)
    touching[edge] = True
    return touching


def _drop_small(labels: np.ndarray, min_area: float, edge_area: float | None = None) -> np.ndarray:
    """``labels`` with objects under ``min_area`` px set to 0 and the rest numbered 1..n.

    Objects on the image's edge, cut by it, need only ``edge_area`` px when given.

    >>> _drop_small(np.array([[1, 1, 0, 2], [3, 3, 3, 0]]), 2).tolist()
    [[1, 1, 0, 0], [2, 2, 2, 0]]
    >>> _drop_small(np.array([[0, 0, 0, 0], [0, 1, 0, 2], [0, 0, 0, 0]]), 2, edge_area=1).tolist()
    [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    """
    areas = np.bincount(labels.ravel())
    keep = areas >= min_area
    if edge_area is not None:
        keep |= _touching_edge(labels)[: len(areas)] & (areas >= edge_area)
    keep[0] = False
    lut = np.zeros(len(areas), np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]


def _fill_small_holes(mask: np.ndarray, max_area: float) -> np.ndarray:
    """``mask`` with its holes (background not reaching the edge) up to ``max_area`` px filled.

    >>> m = np.ones((5, 5), bool); m[2, 2] = False
    >>> bool(_fill_small_holes(m, 1)[2, 2]), bool(_fill_small_holes(m, 0)[2, 2])
    (True, False)
    """
    holes, n = ndi.label(~mask)
    if n == 0:
        return mask
    areas = np.bincount(holes.ravel())
    fill = (areas <= max_area) & ~_touching_edge(holes)
    fill[0] = False
    return mask | fill[holes]


def segment_nuclei(blue: np.ndarray, pixel_um: float, settings: SegmentSettings) -> np.ndarray:
    """Nucleus labels (int32, 1..n) of a blue channel sampled at ``pixel_um`` um/px.

    Examples
    --------
    Two discs that touch become two nuclei:

    >>> yy, xx = np.mgrid[:60, :90]
    >>> blue = (((yy - 30) ** 2 + (xx - 28) ** 2 < 15 ** 2)
    ...         | ((yy - 30) ** 2 + (xx - 58) ** 2 < 15 ** 2)).astype(np.uint8) * 120
    >>> int(segment_nuclei(blue, 0.5, SegmentSettings()).max())
    2
    """
    smooth = _blur(blue, px(settings.nucleus_smooth, pixel_um))
    if float(smooth.max()) <= settings.min_nucleus_level:
        return np.zeros(blue.shape, np.int32)
    level = max(float(threshold_li(smooth)), settings.min_nucleus_level)
    mask = ndi.binary_fill_holes(smooth > level)
    blobs, _ = ndi.label(mask)
    edge_area = area_px(settings.min_edge_area, pixel_um)
    blobs = _drop_small(blobs, area_px(settings.min_nucleus_area, pixel_um), edge_area)
    mask = blobs > 0
    if not mask.any():
        return np.zeros(blue.shape, np.int32)
    cores = mask
    if settings.seam_contrast > 0:
        surround = _blur(smooth, px(settings.seam_scale, pixel_um))
        cores = ndi.binary_fill_holes(mask & (smooth >= settings.seam_contrast * surround))
    dist = cv2.distanceTransform(cores.astype(np.uint8), cv2.DIST_L2, 5)
    dist = _blur(dist, px(settings.split_depth, pixel_um))
    seeds = h_maxima(dist, px(settings.split_depth, pixel_um)) if settings.split_depth > 0 else None
    if seeds is None or not seeds.any():
        return blobs
    markers, _ = ndi.label(seeds)
    nuclei = watershed(-dist, markers, mask=mask)
    # a blob whose every seed was lost (a speck narrower than split_depth) keeps one id
    orphans = mask & (nuclei == 0)
    if orphans.any():
        nuclei = np.where(orphans, blobs + int(nuclei.max()), nuclei)
    nuclei = _refine_edges(nuclei.astype(np.int32), smooth, settings.nucleus_edge)
    return _drop_small(nuclei, area_px(settings.min_nucleus_area, pixel_um) / 4, edge_area)


def _refine_edges(nuclei: np.ndarray, smooth: np.ndarray, fraction: float) -> np.ndarray:
    """Each nucleus cut to its pixels at or above ``fraction`` of its own median, holes filled.

    >>> smooth = np.array([[0, 40, 100, 100, 100, 40, 0]], np.float32)
    >>> _refine_edges(np.array([[0, 1, 1, 1, 1, 1, 0]]), smooth, 0.5).tolist()
    [[0, 0, 1, 1, 1, 0, 0]]
    """
    n = int(nuclei.max())
    if n == 0 or fraction <= 0:
        return nuclei
    median = np.asarray(ndi.median(smooth, nuclei, index=np.arange(1, n + 1)), np.float32)
    level = np.concatenate([[np.inf], fraction * median]).astype(np.float32)
    keep = ndi.binary_fill_holes(smooth >= level[nuclei])
    return np.where(keep, nuclei, 0).astype(np.int32)


def _reference(image: np.ndarray) -> np.ndarray:
    """Mean of red, yellow and blue, each scaled to its 99.5th percentile."""
    ref = np.zeros(image.shape[1:], np.float32)
    for index in (_RED, _YELLOW, _BLUE):
        plane = image[index].astype(np.float32)
        top = float(np.percentile(plane[::4, ::4], 99.5))
        if top > 0:
            ref += np.minimum(plane * (1.0 / top), 1.0)
    return ref / 3.0


def segment_cells(
    image: np.ndarray, nuclei: np.ndarray, pixel_um: float, settings: SegmentSettings
) -> np.ndarray:
    """Cell labels grown from ``nuclei`` (same ids) over the reference channels of ``image``.

    Examples
    --------
    >>> img = np.zeros((4, 40, 80), np.uint8)
    >>> img[0, 5:35, 5:75] = 100          # one band of cytoplasm
    >>> nuc = np.zeros((40, 80), np.int32); nuc[15:25, 15:25] = 1; nuc[15:25, 55:65] = 2
    >>> cells = segment_cells(img, nuc, 1.0, SegmentSettings())
    >>> sorted(np.unique(cells).tolist()), int(cells[20, 30]), int(cells[20, 50])
    ([0, 1, 2], 1, 2)
    """
    if not nuclei.any():
        return np.zeros(nuclei.shape, np.int32)
    raw = _reference(image)
    ref = _blur(raw, px(settings.cell_smooth, pixel_um))
    same = settings.foreground_smooth == settings.cell_smooth  # the default: one blur serves both
    fine = ref if same else _blur(raw, px(settings.foreground_smooth, pixel_um))
    level = float(threshold_otsu(fine)) if float(fine.max()) > float(fine.min()) else float(fine.max())
    foreground = (fine > settings.foreground * level) | (nuclei > 0)
    foreground = _fill_small_holes(foreground, area_px(settings.max_hole_area, pixel_um))
    return watershed(-ref, nuclei, mask=foreground, compactness=settings.compactness).astype(np.int32)


def _work_size(shape: tuple[int, int], pixel_um: float, work_um: float) -> tuple[int, int]:
    """``(h, w)`` to segment a field of ``shape`` at: shrunk when finer than ``work_um``.

    >>> _work_size((2048, 2048), 0.08, 0.32), _work_size((512, 512), 0.32, 0.32)
    ((512, 512), (512, 512))
    """
    if pixel_um >= work_um:
        return shape
    scale = pixel_um / work_um
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def _shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if image.shape[1:] == size:
        return image
    return np.stack([cv2.resize(p, (size[1], size[0]), interpolation=cv2.INTER_AREA) for p in image])


def _grow(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour scaling of a label image to ``shape``, as uint16."""
    labels = labels.astype(np.uint16)
    if labels.shape == shape:
        return labels
    return cv2.resize(labels, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def _prepare(image: np.ndarray, settings: SegmentSettings) -> tuple[np.ndarray, float, float]:
    """The field shrunk to the working pixel size, the input's pixel size and the working one."""
    if image.ndim != 3 or image.shape[0] != len(CHANNELS):
        raise HPAError(f"expected a (4, H, W) field, got shape {image.shape}")
    shape = image.shape[1:]
    pixel_um = settings.pixel_size or infer_pixel_size(shape)
    size = _work_size(shape, pixel_um, settings.work_pixel_size)
    return _shrink(image, size), pixel_um, pixel_um * shape[1] / size[1]


def _nuclei_of(small: np.ndarray, work_um: float, settings: SegmentSettings) -> np.ndarray:
    nuclei = segment_nuclei(small[_BLUE], work_um, settings)
    if int(nuclei.max()) > MAX_LABEL:
        raise HPAError(f"{int(nuclei.max())} nuclei: more than a uint16 label image holds")
    return nuclei


def find_nuclei(image: np.ndarray, settings: SegmentSettings | None = None) -> np.ndarray:
    """Nucleus labels (uint16) of a ``(4, H, W)`` uint8 field at its own size."""
    settings = settings or SegmentSettings()
    small, _, work_um = _prepare(image, settings)
    return _grow(_nuclei_of(small, work_um, settings), image.shape[1:])


def segment_field(image: np.ndarray, settings: SegmentSettings | None = None) -> Segmentation:
    """Segment one ``(4, H, W)`` uint8 field into nuclei and cells at its own size.

    A field without nuclei gives empty label images (and no cells).
    """
    settings = settings or SegmentSettings()
    small, pixel_um, work_um = _prepare(image, settings)
    nuclei = _nuclei_of(small, work_um, settings)
    cells = segment_cells(small, nuclei, work_um, settings)
    shape = image.shape[1:]
    return Segmentation(nuclei=_grow(nuclei, shape), cells=_grow(cells, shape), pixel_size=pixel_um)
