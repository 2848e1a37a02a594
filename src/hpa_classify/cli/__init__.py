"""The ``hpa`` command line: parse, call the package, print. No logic of its own.

This package owns the console: results go to standard output, progress bars
and messages to standard error. The package's modules are imported inside
each command, not at the top, to keep start-up fast (``hpa --help`` loads no
torch) and so that data are checked before torch and Lightning load: those
imports are lazy for start-up speed only.
"""

# Importing a command module registers its commands, in this order in ``hpa --help``.
from hpa_classify.cli import data_commands  # noqa: F401
from hpa_classify.cli import run_commands  # noqa: F401
from hpa_classify.cli import experiment_commands  # noqa: F401
from hpa_classify.cli import cells_commands  # noqa: F401
from hpa_classify.cli import serve_command  # noqa: F401
from hpa_classify.cli import explain_commands  # noqa: F401
from hpa_classify.cli.app import app, main

__all__ = ["app", "main"]
