"""Programmatic Alembic: upgrade, downgrade and inspect every shard's schema revision.

The migrations ship inside the package, in ``elearn_data/alembic/`` (``env.py``,
``versions/``, and the SQL files under ``sql/<revision>/`` as package data), so
an installed wheel migrates as a source checkout does; ``env.py`` runs them on
each shard primary in turn as the schema owner. The checkout's top-level
``alembic.ini`` points at the same folder for the ``alembic`` command. ``status()`` reads
every shard's ``alembic_version`` and reports drift: a shard behind the code's
head, ahead of it (a revision this code does not know), or unreachable.

Drift is judged in one place: :func:`current_revision` reads a database's
revision and :meth:`CodeRevisions.state_of` compares it with the code's
(:func:`code_revisions`); ``status()`` and the health report
(:mod:`elearn_data.health`) both use them.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from elearn_data.config import Settings
from elearn_data.errors import ConfigurationError, InvalidInput
from elearn_data.sharding.engines import build_engine

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The Alembic environment: a folder of the package (package data in the wheel).
SCRIPT_LOCATION = Path(__file__).resolve().parent / "alembic"

Drift = Literal["ok", "behind", "ahead"]
State = Literal["ok", "behind", "ahead", "unreachable"]


@dataclass(frozen=True)
class ShardRevision:
    """One shard's schema revision compared with the code's head."""

    shard: str
    current: str | None
    head: str
    state: State
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def alembic_config(
    settings: Settings,
    *,
    shard: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Config:
    """Return an Alembic Config that migrates the shards of ``settings``.

    Built in code (no alembic.ini needed): what an installed package uses.
    """
    if not (SCRIPT_LOCATION / "env.py").is_file():
        raise ConfigurationError(
            f"the migrations are missing from the package (no {SCRIPT_LOCATION / 'env.py'}); "
            "reinstall elearn-data"
        )
    x = [f"shard={shard}"] if shard else []
    config = Config(cmd_opts=Namespace(x=x))
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    config.attributes["settings"] = settings
    config.attributes["configured_logging"] = True
    config.attributes["progress"] = progress
    return config


def script_directory() -> ScriptDirectory:
    """Return the Alembic script directory of the code's migrations."""
    return ScriptDirectory(str(SCRIPT_LOCATION))


@dataclass(frozen=True)
class CodeRevisions:
    """The code's migrations: the head revision and every revision the code knows."""

    head: str
    known: frozenset[str]

    def state_of(self, current: str | None) -> Drift:
        """Return how a database at revision ``current`` compares with the code.

        ``ok`` at the head; ``behind`` before it (a known revision, or never
        migrated: None); ``ahead`` at a revision this code does not know (newer
        code migrated it).
        """
        if current == self.head:
            return "ok"
        if current is None or current in self.known:
            return "behind"
        return "ahead"


def code_revisions() -> CodeRevisions:
    """Return the code's head revision and every revision it knows.

    Raises:
        ConfigurationError: the package holds no migration revisions.
    """
    script = script_directory()
    head = script.get_current_head()
    if head is None:
        raise ConfigurationError("no migration revisions found")
    return CodeRevisions(head, frozenset(rev.revision for rev in script.walk_revisions()))


def current_revision(conn: Connection) -> str | None:
    """Return the revision recorded in the database behind ``conn`` (None: never migrated)."""
    if conn.execute(text("SELECT to_regclass('alembic_version')")).scalar() is None:
        return None
    revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if revision is None else str(revision)


def known_revisions() -> list[str]:
    """Return every revision of the code, oldest first."""
    return [rev.revision for rev in reversed(list(script_directory().walk_revisions()))]


def head_revision() -> str:
    """Return the newest revision of the code."""
    return code_revisions().head


def upgrade(
    settings: Settings,
    revision: str = "head",
    *,
    shard: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Upgrade every shard (or one) to ``revision``."""
    _check_shard(settings, shard)
    with _revision_errors(revision):
        command.upgrade(alembic_config(settings, shard=shard, progress=progress), revision)


def downgrade(
    settings: Settings,
    revision: str,
    *,
    shard: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Downgrade every shard (or one) to ``revision`` (``base`` removes everything)."""
    _check_shard(settings, shard)
    with _revision_errors(revision):
        command.downgrade(alembic_config(settings, shard=shard, progress=progress), revision)


@contextmanager
def _revision_errors(revision: str) -> Iterator[None]:
    """Turn Alembic's CommandError (e.g. an unknown revision) into InvalidInput."""
    try:
        yield
    except CommandError as exc:
        raise InvalidInput(
            f"cannot migrate to revision {revision!r}: {exc}; "
            f"known revisions: {', '.join(known_revisions())} (or head, base)"
        ) from exc


def _check_shard(settings: Settings, shard: str | None) -> None:
    if shard is not None and shard not in settings.shards:
        raise ConfigurationError(
            f"unknown shard {shard!r}; shards: {', '.join(settings.shard_names)}"
        )


def status(settings: Settings) -> list[ShardRevision]:
    """Return every shard's revision and drift state; never raises for a down shard."""
    revisions = code_revisions()
    head = revisions.head
    result: list[ShardRevision] = []
    for shard in settings.shard_names:
        primary = settings.shards[shard].primary
        assert primary is not None
        engine = build_engine(
            primary, settings=settings, password=settings.shard_password(shard), pooled=False
        )
        try:
            with engine.connect() as conn:
                current = current_revision(conn)
        except SQLAlchemyError as exc:
            message = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            result.append(ShardRevision(shard, None, head, "unreachable", message))
            continue
        finally:
            engine.dispose()
        result.append(ShardRevision(shard, current, head, revisions.state_of(current)))
    return result


def drift(revisions: list[ShardRevision]) -> bool:
    """Return True when any shard is not at the head revision."""
    return any(r.state != "ok" for r in revisions)
