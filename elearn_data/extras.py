"""Optional parts of the package: which extra provides a module, and a clear error without it.

``pip install elearn-data`` installs the library and its database drivers
only: ``connect()``, the repositories and the services work with nothing more.
The rest comes with extras (see README.md, "Install"):

* ``[cli]`` -- typer and rich: the ``elearn`` command;
* ``[seed]`` -- Faker and numpy: ``elearn seed`` / ``elearn_data.seeding``;
* ``[analytics]`` -- pandas, numpy, DuckDB and its PostgreSQL extension,
  pyarrow: ``db.analytics``;
* ``[bench]`` -- what ``elearn bench`` runs (cli, seed and analytics);
* ``[mongo-mock]`` -- mongomock-ng: the in-process content store used when no
  ``mongo_uri`` is set (the embedded cluster, tests);
* ``[web]`` -- FastAPI, uvicorn and PyJWT: ``elearn serve``;
* ``[all]`` -- every one of them (what ``elearn up`` needs); ``[dev]`` adds
  the test and lint tools.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from elearn_data.errors import MissingExtra

# The extra that installs each optional top-level module.
EXTRA_OF = {
    "typer": "cli",
    "rich": "cli",
    "faker": "seed",
    "numpy": "seed",
    "pandas": "analytics",
    "duckdb": "analytics",
    "pyarrow": "analytics",
    "mongomock_ng": "mongo-mock",
    "fastapi": "web",
    "uvicorn": "web",
    "jwt": "web",
}


def missing(
    module: str, purpose: str, exc: ImportError | None = None, *, extra: str | None = None
) -> MissingExtra:
    """Return the error for ``purpose`` needing ``module`` (its extra: given, or looked up)."""
    extra = extra or EXTRA_OF.get(module.partition(".")[0], "all")
    error = MissingExtra(
        f"{purpose} needs {module}, which is not installed: pip install 'elearn-data[{extra}]'",
        name=module,
    )
    if exc is not None:
        error.__cause__ = exc
    return error


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise MissingExtra naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name.partition(".")[0] != module.partition(".")[0]:
            raise  # the module is there but broken: show the real error
        raise missing(module, purpose, exc) from exc


def need(purpose: str, *modules: str, extra: str | None = None) -> None:
    """Raise MissingExtra unless every one of ``modules`` can be imported (none is imported).

    The message names ``extra``, or else the extra that provides the missing module.
    """
    for module in modules:
        if module in sys.modules:
            continue
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise missing(module, purpose, extra=extra)
