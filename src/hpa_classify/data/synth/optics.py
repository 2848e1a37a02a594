"""The microscope: blur, uneven illumination, exposure, shot and read noise, 8-bit counts."""

from __future__ import annotations

import cv2
import numpy as np

from hpa_classify.data.synth.drawing import smooth_noise


def optics(signal: np.ndarray, blur: float, size: int) -> np.ndarray:
    """Blur at the drawing resolution, then average down to the output size."""
    x = cv2.GaussianBlur(signal.astype(np.float32), (0, 0), blur)
    if x.shape[0] != size:
        x = cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA)
    return x


def illumination(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smoothly uneven illumination over the field, between 0.8 and 1."""
    return 1.0 - 0.2 * (0.5 + 0.5 * np.tanh(smooth_noise(rng, size, size / 1.5)))


def expose(
    signal: np.ndarray,
    gain: float,
    light: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Scale to 8-bit counts under ``light``, add shot and read noise, quantise."""
    counts = np.maximum(signal * light * gain, 0.0)
    per_photon = rng.uniform(0.4, 1.6)  # counts per detected photon
    read = rng.uniform(0.4, 1.5)
    # shot noise (variance proportional to the signal) plus read noise, as one Gaussian
    sd = np.sqrt(counts * per_photon + read * read)
    noisy = counts + sd * rng.standard_normal(counts.shape, dtype=np.float32)
    noisy += rng.uniform(0.0, 4.0)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def robust_peak(signal: np.ndarray) -> float:
    """Level of the bright part of a pattern: high percentile of its brighter pixels.

    >>> robust_peak(np.zeros((4, 4)))
    1.0
    >>> robust_peak(np.array([0.0, 1.0, 1.0, 1.0]))
    1.0
    """
    top = float(signal.max())
    if top <= 0:
        return 1.0
    bright = signal[signal > 0.15 * top]
    return max(float(np.percentile(bright, 90)), 0.25 * top, 0.05)
