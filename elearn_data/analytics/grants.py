"""The analyst role's rights in each shard database: SELECT on the visible columns only.

The role itself is cluster-wide (created by ``elearn cluster up``, or by the
operator of an external deployment); these grants are per database and are made
by the migrations (revision ``0007``, and ``elearn_data/alembic/env.py`` after every run,
so a table a later revision adds is granted as soon as it exists). From
revision ``0010`` on, the personal columns (``info=PERSONAL``: email, names,
phone, birth date, card details) are not granted; a database downgraded below
it gets them back, as revision ``0007`` granted them. Applying
them converges: everything is revoked first, then exactly the visible columns
of :func:`~elearn_data.analytics.visibility.visible_tables` that exist in the
database are granted. No TEMP (a temporary table or view is DDL), no function
of ours is granted.

Defence in depth: whatever the DuckDB-side guard lets through, PostgreSQL
answers "permission denied" for every other table and column.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import Connection, text

from elearn_data.analytics.visibility import restrict, visible_tables

log = logging.getLogger(__name__)

# The revision that introduces the analyst grants (env.py re-applies them after it).
ANALYST_REVISION = "0007"
# The revision from which the analyst role reads no personal column.
PERSONAL_REVISION = "0010"


def migration_role() -> str:
    """Return the analyst role of the running migration (``Settings.analyst_user``)."""
    from alembic import context  # noqa: PLC0415 - only inside an Alembic run

    from elearn_data.config import load_settings  # noqa: PLC0415

    settings = context.config.attributes.get("settings") or load_settings()
    return str(settings.analyst_user)


def role_exists(connection: Connection, role: str) -> bool:
    """Return True when the PostgreSQL role exists."""
    found = connection.execute(
        text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).first()
    return found is not None


def _present_columns(connection: Connection) -> dict[str, list[str]]:
    rows = connection.execute(
        text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        )
    )
    present: dict[str, list[str]] = defaultdict(list)
    for table, column in rows:
        present[str(table)].append(str(column))
    return present


def grant_analyst(connection: Connection, role: str, *, personal: bool = False) -> bool:
    """Make ``role``'s rights exactly SELECT on the visible columns (False: no such role).

    ``personal=True``: the personal columns too (the grants before revision 0010).
    """
    if not role_exists(connection, role):
        log.warning("analyst role %s does not exist; no analyst grants made", role)
        return False
    revoke_analyst(connection, role)
    quote = connection.dialect.identifier_preparer.quote
    grantee = quote(role)
    connection.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {grantee}")
    for table in restrict(visible_tables(personal=personal), _present_columns(connection)):
        columns = ", ".join(quote(c) for c in table.columns)
        connection.exec_driver_sql(
            f"GRANT SELECT ({columns}) ON TABLE public.{quote(table.name)} TO {grantee}"
        )
    return True


def revoke_analyst(connection: Connection, role: str) -> None:
    """Take every right on this database's objects from ``role`` (TEMP included)."""
    if not role_exists(connection, role):
        return
    quote = connection.dialect.identifier_preparer.quote
    grantee = quote(role)
    database = quote(str(connection.execute(text("SELECT current_database()")).scalar_one()))
    # Revoking a table's privileges revokes its column privileges too.
    for statement in (
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {grantee}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {grantee}",
        f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM {grantee}",
        f"REVOKE ALL ON SCHEMA public FROM {grantee}",
        # PUBLIC's TEMP would reach the analyst role through it: take it from both
        # (the embedded cluster revokes it from PUBLIC already).
        f"REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC",
        f"REVOKE TEMPORARY ON DATABASE {database} FROM {grantee}",
    ):
        connection.exec_driver_sql(statement)
