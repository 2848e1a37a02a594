"""A small profile of a dataset's images, to notice when new data differ from a run's.

At training time the run records, in ``env.json``, the native size of its
images and the mean intensity of each channel over a few of them. ``hpa
predict`` profiles its data the same way and warns (it does not stop) when the
two disagree: images of another size or bit depth, another microscope's
exposure, or channels in another order all change what the model sees, even
though every image is resized to ``data.size`` and normalised with the run's
``data.mean`` and ``data.std``.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from typing import Any

from hpa_classify.classes import CHANNELS
from hpa_classify.data.io import Scaling, load_sample
from hpa_classify.data.layout import Dataset, image_size

log = logging.getLogger(__name__)

#: A channel's mean may differ by up to this factor before a warning.
MEAN_RATIO = 2.0
#: ... and by at least this much on the 0-1 scale (near-black channels vary a lot).
MEAN_FLOOR = 0.01


def profile(data: Dataset, n: int = 16, seed: int = 0) -> dict[str, Any]:
    """Native image size and per-channel mean intensity (0-1) of up to ``n`` samples.

    The samples are picked at random (``seed``) from those with all four
    channels; the size is the green channel's, read from the file header.
    """
    present = data.reading.channels
    complete = [i for i, files in enumerate(data.files) if all(c in files for c in present)]
    picks = sorted(random.Random(seed).sample(complete, min(n, len(complete))))
    sizes: Counter[str] = Counter()
    sums = [0.0] * len(CHANNELS)
    for i in picks:
        width, height = image_size(data.files[i]["green"])
        sizes[f"{width}x{height}"] += 1
        sample = load_sample(data.files[i], None, data.reading)
        for k in range(len(CHANNELS)):
            sums[k] += float(sample[k].mean()) / 255.0
    return {
        "n_images": len(picks),
        "image_size": sizes.most_common(1)[0][0] if sizes else None,
        "image_sizes": dict(sizes),
        "channel_mean": {c: round(s / max(len(picks), 1), 5) for c, s in zip(CHANNELS, sums) if c in present},
        "channels": list(present),
        "channel_map": dict(data.reading.channel_map) if data.reading.channel_map else None,
        "intensity": (data.reading.scaling or Scaling()).as_dict(),
    }


def differences(trained: dict[str, Any], now: dict[str, Any], size: int | None = None) -> list[str]:
    """What differs between the profile a run recorded and that of new data, in words.

    >>> a = {"image_size": "512x512", "channel_mean": {"green": 0.05}}
    >>> differences(a, {"image_size": "512x512", "channel_mean": {"green": 0.06}})
    []
    >>> differences(a, {"image_size": "2048x2048", "channel_mean": {"green": 0.3}}, size=512)[0]
    'images are 2048x2048 px, but the run was trained on 512x512 px (both are resized to 512 px)'
    """
    found = []
    was, is_ = trained.get("image_size"), now.get("image_size")
    if was and is_ and was != is_:
        resized = f" (both are resized to {size} px)" if size else ""
        found.append(f"images are {is_} px, but the run was trained on {was} px{resized}")
    means_was = trained.get("channel_mean") or {}
    means_is = now.get("channel_mean") or {}
    for channel in CHANNELS:
        if channel not in means_was or channel not in means_is:
            continue
        a, b = float(means_was[channel]), float(means_is[channel])
        if abs(a - b) >= MEAN_FLOOR and max(a, b) > MEAN_RATIO * min(a, b):
            found.append(
                f"{channel} channel: mean intensity {b:.3f}, but {a:.3f} in the training data "
                "(other staining, exposure or bit depth?)"
            )
    return found
