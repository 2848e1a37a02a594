"""``python -m hpa_classify.cli``: the ``hpa`` command."""

from hpa_classify.cli import main

main()
