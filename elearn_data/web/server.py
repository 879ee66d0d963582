"""Running the API: ``serve()`` (what ``elearn serve`` calls) and a child-process server.

``serve()`` makes sure the signing keys exist before the workers start (each
worker reads the same key file), then hands over to uvicorn: with
``workers > 1`` uvicorn's supervisor binds the port once and spawns the worker
processes, each building its own app (and so its own Database) from the
factory. SIGTERM or SIGINT stops accepting, lets in-flight requests finish
(up to ``graceful_s``), then runs every worker's shutdown, which closes its
pools.

:class:`ServerProcess` runs ``elearn serve`` in a child process on a free port
below 32768 for tests and benchmarks, and stops it the same way an operator
would (SIGTERM).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import SecretStr

from elearn_data.config import Settings, settings_file
from elearn_data.errors import ConfigurationError
from elearn_data.web.keys import ensure_home_keys
from elearn_data.web.logs import log_config

APP = "elearn_data.web.app:create_app"
# Every server the project starts listens below the ephemeral port range (32768+).
_PORTS = (20000, 32000)


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    settings: Settings,
    graceful_s: float = 30.0,
    log_level: str = "info",
) -> None:
    """Run the API until SIGTERM or SIGINT (blocking)."""
    import uvicorn  # noqa: PLC0415 - the [web] extra; only `elearn serve` needs it

    if settings.web.signing_key is None:
        ensure_home_keys(settings.home)
    # Workers find the same cluster and settings: they inherit the environment.
    os.environ["ELEARN_HOME"] = str(settings.home)
    uvicorn.run(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(log_level.upper()),
        log_level=log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(graceful_s),
        timeout_keep_alive=settings.web.keep_alive_s,
        # A worker imports the platform and connects before it answers the supervisor's
        # pings; on a busy 2-core machine that can take longer than uvicorn's 5 s.
        timeout_worker_healthcheck=60,
    )


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port below 32768 that nothing listens on now."""
    rng = random.Random()  # noqa: S311 - picks a port, not a secret
    for _ in range(200):
        port = rng.randrange(*_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise ConfigurationError(f"no free port between {_PORTS[0]} and {_PORTS[1]}")


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def write_settings_home(settings: Settings, home: Path) -> Path:
    """Write ``settings`` (secrets included, mode 0600) as ``home``'s settings file.

    A server started with ``ELEARN_HOME=home`` and no ``ELEARN_SHARDS`` then runs
    on exactly these settings (scratch databases of a benchmark, for instance).
    """
    home.mkdir(parents=True, exist_ok=True)
    payload = _plain(settings.model_dump())
    payload["home"] = str(home)
    path = settings_file(home)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(payload, out)
    return path


class ServerProcess:
    """``elearn serve`` in a child process (tests, benchmarks); a context manager."""

    def __init__(
        self,
        home: Path,
        *,
        workers: int = 2,
        port: int | None = None,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.home = home
        self.workers = workers
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.env = env or {}
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="elearn-serve-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ELEARN_")}
        env.update(self.env)
        env["ELEARN_HOME"] = str(self.home)
        command = [sys.executable, "-m", "elearn_data.cli", "serve"]
        command += ["--host", self.host, "--port", str(self.port), "--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own CLI, no shell
                command, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until every worker answers (distinct X-Elearn-Worker ids on fresh connections)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ConfigurationError(
                    f"elearn serve exited with {self.proc.returncode}: {self.log_tail()}"
                )
            if len(self.workers_answering()) >= self.workers:
                return
            time.sleep(0.2)
        raise ConfigurationError(
            f"elearn serve did not start {self.workers} workers in {timeout_s} s: {self.log_tail()}"
        )

    def workers_answering(self, connections: int = 8) -> set[str]:
        """Return the ids of the workers that answer ``connections`` connections opened at once.

        Connections opened one after the other tend to land on the same worker (the
        one already awake in accept()); several pending at once spread over them.
        """
        conns = [
            http.client.HTTPConnection(self.host, self.port, timeout=5) for _ in range(connections)
        ]
        seen: set[str] = set()
        try:
            for conn in conns:
                conn.connect()
            for conn in conns:
                conn.request("GET", "/v1/health/live")
            for conn in conns:
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    seen.add(response.getheader("X-Elearn-Worker") or "")
        except OSError:
            pass
        finally:
            for conn in conns:
                conn.close()
        return seen

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, as an operator would; SIGKILL after ``timeout_s``. Return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
