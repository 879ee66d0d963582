"""Alembic environment: run the migrations on every shard primary in turn.

Each shard is its own PostgreSQL server with its own ``alembic_version`` table,
so every shard records its own revision. Migrations run as the schema owner
(``Settings.owner_user``), never on a replica. ``-x shard=eu`` limits the run to
one shard; ``-x home=/path`` reads the settings of another ELEARN_HOME.

After a run, env.py records the shard's name in ``shard_meta`` and grants the
application role DML on every table and EXECUTE on every function (least
privilege: the application role has no DDL rights), so a new table is usable by
the application as soon as it exists -- except the money tables (SELECT and
INSERT only) and the protocol tables (SELECT only), which change only through
the owner's SECURITY DEFINER functions of revision 0005. From revision 0007 on
it also re-applies the analyst role's column grants
(elearn_data/analytics/grants.py), without the personal columns from revision
0010 on.
"""

from __future__ import annotations

import logging
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from elearn_data.analytics.grants import ANALYST_REVISION, PERSONAL_REVISION, grant_analyst
from elearn_data.config import load_settings, with_user
from elearn_data.errors import ShardUnavailable
from elearn_data.models import Base
from elearn_data.sharding.engines import build_engine

config = context.config
if config.config_file_name is not None and not config.attributes.get("configured_logging"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
log = logging.getLogger("alembic.env")

target_metadata = Base.metadata


def _include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    # Objects PostgreSQL creates on its own are not part of the models.
    return not (type_ == "table" and name == "alembic_version")


# Money rows are append-only for the application role: status changes go
# through the owner's SECURITY DEFINER functions (revision 0005). So is the
# points ledger (revision 0009): a paid event is never changed or taken back.
APPEND_ONLY_TABLES = ("transactions", "invoices", "points_ledger")
# Which of the given tables exist (an append-only table of a later revision may not yet).
_PRESENT_TABLES = text(
    "SELECT t FROM unnest(CAST(:tables AS text[])) AS t WHERE to_regclass(t) IS NOT NULL"
)
# Protocol state: the application role reads it; the owner's functions write it.
READ_ONLY_TABLES = ("twophase_decisions", "shard_meta", "alembic_version")
# Present once revision 0005 ran; before it the money functions run as the caller.
_OWNER_FUNCTIONS_MARKER = "elearn_twophase_decide(text)"


def _grant(connection: Connection, app_role: str) -> None:
    exists = connection.execute(
        text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": app_role}
    ).first()
    if exists is None:
        log.warning("application role %s does not exist; no grants made", app_role)
        return
    role = connection.dialect.identifier_preparer.quote(app_role)
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}",
        f"REVOKE ALL ON TABLE alembic_version FROM {role}",
        f"GRANT SELECT ON TABLE alembic_version TO {role}",
    ]
    owner_functions = connection.execute(
        text("SELECT to_regprocedure(:f)"), {"f": _OWNER_FUNCTIONS_MARKER}
    ).scalar()
    if owner_functions is not None:
        present = set(
            connection.execute(
                _PRESENT_TABLES,
                {"tables": list(APPEND_ONLY_TABLES)},
            ).scalars()
        )
        for table in (t for t in APPEND_ONLY_TABLES if t in present):
            statements += [
                f"REVOKE ALL ON TABLE {table} FROM {role}",
                f"GRANT SELECT, INSERT ON TABLE {table} TO {role}",
            ]
        for table in READ_ONLY_TABLES:
            statements += [
                f"REVOKE ALL ON TABLE {table} FROM {role}",
                f"GRANT SELECT ON TABLE {table} TO {role}",
            ]
    for statement in statements:
        connection.exec_driver_sql(statement)


def _grant_analyst(connection: Connection, analyst_role: str) -> None:
    """Re-apply the analyst grants when the shard is at or past their revision.

    They follow the models (a table a later revision adds is granted, or hidden,
    by its placement), so they are recomputed after every run.
    """
    if connection.execute(text("SELECT to_regclass('alembic_version')")).scalar() is None:
        return
    current = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    script = ScriptDirectory.from_config(config)
    applied = {
        rev.revision
        for head in current
        for rev in script.iterate_revisions(head, "base")
        if rev is not None
    }
    if ANALYST_REVISION in applied:
        grant_analyst(connection, analyst_role, personal=PERSONAL_REVISION not in applied)


def _record_shard(connection: Connection, shard: str) -> None:
    if connection.execute(text("SELECT to_regclass('shard_meta')")).scalar() is None:
        return
    connection.execute(
        text(
            "INSERT INTO shard_meta (key, value) VALUES ('shard', :shard) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ),
        {"shard": shard},
    )


def run_migrations_offline() -> None:
    """Emit SQL for one shard (they all share the schema)."""
    context.configure(
        url="postgresql+psycopg2://",
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate each shard primary in turn (or the one named by ``-x shard=``)."""
    x = context.get_x_argument(as_dictionary=True)
    overrides = {"home": x["home"]} if "home" in x else {}
    settings = config.attributes.get("settings") or load_settings(**overrides)
    shards = [x["shard"]] if "shard" in x else list(settings.shard_names)
    unknown = [s for s in shards if s not in settings.shards]
    if unknown:
        raise SystemExit(f"unknown shard(s): {', '.join(unknown)}; shards: {settings.shard_names}")
    # Never from the runtime settings file: ELEARN_OWNER_PASSWORD / ELEARN_OWNER_URL
    # or the operator's cluster.json (Settings.owner_credentials).
    owner_user, owner_password = settings.owner_credentials()
    for shard in shards:
        primary = settings.shards[shard].primary
        assert primary is not None
        engine = build_engine(
            with_user(primary, owner_user),
            settings=settings,
            password=owner_password or settings.shard_password(shard),
            application="elearn_data-migrate",
            pooled=False,
        )
        log.info("migrating shard %s", shard)
        try:
            with engine.connect() as connection:
                context.configure(
                    connection=connection,
                    target_metadata=target_metadata,
                    include_object=_include_object,
                    compare_type=True,
                    compare_server_default=False,
                    transaction_per_migration=False,
                )
                # Revisions that need the shard's name read config.attributes["shard"].
                config.attributes["shard"] = shard
                with context.begin_transaction():
                    context.run_migrations()
                if not context.is_offline_mode():
                    _record_shard(connection, shard)
                    _grant(connection, settings.app_user)
                    _grant_analyst(connection, settings.analyst_user)
                    connection.commit()
        except OperationalError as exc:
            detail = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "no answer"
            if config.attributes.get("settings") is not None:
                # Called through elearn_data.migrations: a domain error the CLI prints in one line.
                raise ShardUnavailable(shard, f"cannot reach its primary: {detail}") from exc
            raise SystemExit(f"shard {shard}: cannot reach its primary: {detail}") from exc
        finally:
            engine.dispose()
        progress = config.attributes.get("progress")
        if progress is not None:
            progress(shard)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
