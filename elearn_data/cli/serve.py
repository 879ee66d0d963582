"""``elearn serve``: the REST API (FastAPI under uvicorn) over the platform of ELEARN_HOME."""

from __future__ import annotations

from typing import Annotated

import typer

from elearn_data.cli.common import console, domain_errors, err_console
from elearn_data.config import load_settings


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (below 32768).")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    graceful: Annotated[
        float, typer.Option(help="Seconds in-flight requests get to finish at shutdown.")
    ] = 30.0,
    rotate_key: Annotated[
        bool,
        typer.Option(
            "--rotate-key",
            help="Make a new signing key current first (tokens of the old one stay valid).",
        ),
    ] = False,
) -> None:
    """Serve the REST API (OpenAPI at /docs) until SIGTERM or Ctrl-C.

    Each worker process holds one connection to the platform. Needs the web
    extra: pip install 'elearn-data[web]'.
    """
    try:
        from elearn_data.web.keys import rotate_home_keys  # noqa: PLC0415
        from elearn_data.web.server import serve as run  # noqa: PLC0415
    except ImportError as exc:
        err_console.print(
            f"[bold red]error:[/] the REST API needs the web extra "
            f"(pip install 'elearn-data[web]'): {exc}"
        )
        raise typer.Exit(1) from exc
    with domain_errors():
        settings = load_settings()
        if rotate_key:
            if settings.web.signing_key is not None:
                err_console.print(
                    "[bold red]error:[/] the signing key comes from the settings "
                    "(web.signing_key): rotate it there"
                )
                raise typer.Exit(1)
            console.print(f"signing key rotated: {rotate_home_keys(settings.home)} is current")
        err_console.print(
            f"[dim]•[/] serving on http://{host}:{port} ({workers} worker(s)); docs at /docs"
        )
        run(host=host, port=port, workers=workers, settings=settings, graceful_s=graceful)
