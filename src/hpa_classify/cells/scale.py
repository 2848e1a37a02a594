"""Pixel sizes: every length of the segmentation is given in micrometres.

HPA fields of view are about 164 um across: 2048 px at 0.08 um/px in the
full-size images (3072 and 1728 px fields cover the same field at other
sampling), and 512 px at 0.32 um/px in the Kaggle 2018 images, which are the
same fields shrunk 4 times. A pixel size not given is inferred from the
image side on that basis, so one set of settings serves every size.

>>> infer_pixel_size((512, 512))
0.32
>>> round(infer_pixel_size((3072, 3072)), 4)
0.0533
>>> px(10.0, 0.32), area_px(32.0, 0.32)
(31.25, 312.5)
"""

from __future__ import annotations

from hpa_classify.errors import HPAError

#: Pixel size of a full-size HPA field of 2048 px, um.
FULL_SIZE_PIXEL_UM = 0.08

#: Side of a full-size HPA field, px.
FULL_SIZE_SIDE = 2048

#: Width of an HPA field of view, um.
FIELD_WIDTH_UM = FULL_SIZE_PIXEL_UM * FULL_SIZE_SIDE


def infer_pixel_size(shape: tuple[int, ...]) -> float:
    """Pixel size (um) of an HPA field with image ``shape`` ``(H, W)``: 163.84 um / the longer side.

    >>> infer_pixel_size((2048, 2048))
    0.08
    """
    side = max(int(shape[-2]), int(shape[-1]))
    if side <= 0:
        raise HPAError(f"cannot infer a pixel size for an empty image of shape {tuple(shape)}")
    return FIELD_WIDTH_UM / side


def check_pixel_size(value: float | None) -> float | None:
    """``value`` if it is a plausible pixel size (over 0, under 100 um), else an HPAError.

    >>> check_pixel_size(0.08), check_pixel_size(None)
    (0.08, None)
    """
    if value is not None and not 0.0 < value < 100.0:
        raise HPAError(f"pixel size must be between 0 and 100 um, got {value}")
    return value


def px(length_um: float, pixel_um: float) -> float:
    """A length in micrometres as pixels at ``pixel_um`` um/px."""
    return length_um / pixel_um


def area_px(area_um2: float, pixel_um: float) -> float:
    """An area in square micrometres as pixels at ``pixel_um`` um/px."""
    return area_um2 / (pixel_um * pixel_um)
