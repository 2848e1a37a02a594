"""The green pattern of each class, registered by class id.

A pattern is a function ``(field, rng) -> (H, W) float array`` that draws the
protein of one class at the field's drawing resolution; the decorator
``@pattern(class_id)`` registers it. Registering a class twice, or an id out
of range, raises at import; asking for a class with no pattern raises
:class:`LookupError` naming it.

>>> sorted(PATTERNS) == list(range(NUM_CLASSES))
True
>>> green_pattern(7).__name__
'golgi'
>>> pattern(7)(lambda fld, rng: fld.nuc)
Traceback (most recent call last):
...
ValueError: class 7 (Golgi apparatus) already has a green pattern: golgi
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hpa_classify.classes import CLASS_NAMES, NUM_CLASSES
from hpa_classify.data.synth.geometry import Field

Pattern = Callable[[Field, np.random.Generator], np.ndarray]

#: Class id -> its green pattern; filled by the modules of this package as they are imported.
PATTERNS: dict[int, Pattern] = {}


def pattern(class_id: int) -> Callable[[Pattern], Pattern]:
    """Register the decorated function as the green pattern of ``class_id``."""
    if not 0 <= class_id < NUM_CLASSES:
        raise ValueError(f"class {class_id} out of range 0-{NUM_CLASSES - 1}")

    def register(fn: Pattern) -> Pattern:
        if class_id in PATTERNS:
            raise ValueError(
                f"class {class_id} ({CLASS_NAMES[class_id]}) already has a green pattern: "
                f"{PATTERNS[class_id].__name__}"
            )
        PATTERNS[class_id] = fn
        return fn

    return register


def green_pattern(class_id: int) -> Pattern:
    """The green pattern registered for ``class_id``."""
    try:
        return PATTERNS[class_id]
    except KeyError:
        name = CLASS_NAMES[class_id] if 0 <= class_id < NUM_CLASSES else "out of range"
        raise LookupError(f"no green pattern registered for class {class_id} ({name})") from None
