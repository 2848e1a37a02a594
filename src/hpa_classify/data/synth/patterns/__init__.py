"""The 28 green patterns, one per class, registered with ``@pattern(class_id)``.

Importing this package imports every module that registers a pattern, so
:func:`green_pattern` finds all of them.
"""

# each of these modules registers its patterns as it is imported
from hpa_classify.data.synth.patterns import (  # noqa: F401
    cytoplasm,
    cytoskeleton,
    membrane,
    nucleus,
)
from hpa_classify.data.synth.patterns.nucleus import NUCLEAR_CLASSES
from hpa_classify.data.synth.patterns.registry import PATTERNS, Pattern, green_pattern, pattern

__all__ = ["NUCLEAR_CLASSES", "PATTERNS", "Pattern", "green_pattern", "pattern"]
