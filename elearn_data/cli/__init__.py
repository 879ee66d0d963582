"""The ``elearn`` command line: a thin view over the typed API.

Each command calls one public function and prints its result; only this package
prints. Long work shows progress.
"""

from elearn_data.cli.app import app, main

__all__ = ["app", "main"]
