"""Find the machine's PostgreSQL server binaries and run them as the right user.

PostgreSQL refuses to run as root. When this process is root, every server
binary runs as the ``postgres`` OS user (through ``runuser``) on folders that
user owns; Python itself stays root.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from elearn_data.errors import ConfigurationError

log = logging.getLogger(__name__)

REQUIRED = ("initdb", "pg_ctl", "postgres", "pg_basebackup")
INSTALL_HINT = "apt-get update && apt-get install -y postgresql"
SERVER_USER = "postgres"


def _version_key(path: str) -> tuple[int, ...]:
    parts = [p for p in Path(path).parts if p.replace(".", "").isdigit()]
    return tuple(int(x) for x in parts[-1].split(".")) if parts else (0,)


def _candidates() -> list[Path]:
    found: list[Path] = []
    if env := os.environ.get("ELEARN_PG_BINDIR"):
        found.append(Path(env))
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            found.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass
    found += [
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key)[::-1]
    ]
    if initdb := shutil.which("initdb"):
        found.append(Path(initdb).resolve().parent)
    return found


@cache
def find_bindir() -> Path:
    """Return a folder holding initdb, pg_ctl, postgres and pg_basebackup.

    Raises:
        ConfigurationError: none found; the message gives the install command.
    """
    for candidate in _candidates():
        if all((candidate / name).is_file() for name in REQUIRED):
            return candidate
    raise ConfigurationError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_basebackup) not found; "
        f"install them with: {INSTALL_HINT} (or set ELEARN_PG_BINDIR)"
    )


def server_version(bindir: Path) -> str:
    """Return the version string printed by ``postgres --version``."""
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return out.strip().rsplit(" ", 1)[-1]


def running_as_root() -> bool:
    """Return True when this process must hand the server binaries to ``postgres``."""
    return os.geteuid() == 0


@dataclass(frozen=True)
class ServerUser:
    """The OS user that owns data folders and runs the server."""

    name: str
    uid: int
    gid: int

    @classmethod
    def current(cls) -> ServerUser:
        """Return ``postgres`` when running as root, otherwise the current user."""
        if running_as_root():
            try:
                entry = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise ConfigurationError(
                    f"running as root, but there is no {SERVER_USER!r} OS user to run "
                    f"PostgreSQL as; install the server package ({INSTALL_HINT}) or "
                    "create the user"
                ) from None
            return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)
        entry = pwd.getpwuid(os.geteuid())
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    def command(self, argv: Sequence[str]) -> list[str]:
        """Return ``argv`` wrapped so that it runs as this user."""
        if running_as_root() and self.uid != 0:
            return ["runuser", "-u", self.name, "--", *argv]
        return list(argv)

    def chown(self, path: Path) -> None:
        """Give ``path`` to this user (a no-op when not root)."""
        if running_as_root():
            os.chown(path, self.uid, self.gid)

    def make_reachable(self, path: Path) -> None:
        """Make sure this user can traverse every ancestor folder of ``path``.

        A folder that neither belongs to the user nor lets others search it gets
        the search bit for others (``o+x``: enter, not list). That is the least
        change that lets the server reach its data folder, e.g. inside a
        ``mktemp -d`` checkout.
        """
        if not running_as_root():
            return
        for ancestor in reversed(path.absolute().parents):
            st = ancestor.stat()
            if st.st_uid == self.uid or st.st_mode & 0o001:
                continue
            if st.st_gid == self.gid and st.st_mode & 0o010:
                continue
            log.warning("granting o+x on %s so the %s user can reach %s", ancestor, self.name, path)
            ancestor.chmod(st.st_mode | 0o001)

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 300,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a server binary as this user; raise ConfigurationError with its output on failure."""
        full_env = {**os.environ, **(env or {})}
        # The server user cannot read root's home; keep libpq away from it.
        full_env.setdefault("PGPASSFILE", "/dev/null")
        proc = subprocess.run(
            self.command(argv),
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            check=False,
        )
        if check and proc.returncode != 0:
            raise ConfigurationError(
                f"{Path(argv[0]).name} failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )
        return proc
