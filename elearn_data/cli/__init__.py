"""The ``elearn`` command line: a thin view over the typed API.

Each command calls one public function and prints its result; only this package
prints. Long work shows progress. It needs the ``[cli]`` extra (typer, rich);
``elearn seed`` and ``elearn bench`` need ``[seed]`` / ``[bench]`` as well.
"""

from __future__ import annotations

import sys
from typing import Any

from elearn_data.extras import EXTRA_OF


def main() -> None:
    """Entry point of the ``elearn`` console script (see :func:`elearn_data.cli.app.main`)."""
    try:
        from elearn_data.cli.app import main as run  # noqa: PLC0415
    except ImportError as exc:
        top = (exc.name or "").partition(".")[0]
        if top not in EXTRA_OF and top != "click":
            raise
        extra = EXTRA_OF.get(top, "cli")
        sys.exit(f"elearn: {exc.name} is not installed: pip install 'elearn-data[{extra}]'")
    run()


def __getattr__(name: str) -> Any:
    # `app` (the typer application) is loaded on first use, like the commands.
    if name == "app":
        from elearn_data.cli.app import app  # noqa: PLC0415

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "main"]
