"""Quality benchmark: held-out macro F1 of the default recipe and its ablations.

The same as ``hpa bench quality``; every option passes through::

    python benchmarks/quality.py --threads 1          # the full table
    python benchmarks/quality.py --quick -o /tmp/bq   # a smoke run

The logic lives in :mod:`hpa_classify.workflows.quality`.
"""

from __future__ import annotations

import sys

from hpa_classify.cli import main

if __name__ == "__main__":
    sys.argv = ["hpa", "bench", "quality", *sys.argv[1:]]
    main()
