"""Least privilege: migrations run as the schema owner; the application role runs DML only.

Roles on every primary (``elearn_data/cluster/local.py``): ``postgres``
(superuser, cluster administration only), ``elearn_owner`` (owns the database,
the schema and every object: migrations), ``elearn_app`` (what ``connect()``
uses: SELECT/INSERT/UPDATE/DELETE on tables, EXECUTE on functions, read-only
monitoring statistics) and ``elearn_replicator`` (replication only).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings
from elearn_data.database import Database
from tests.integration.reliability.drills import admin

# DDL (and other owner-only commands) the application role must be refused.
REFUSED = [
    "CREATE TABLE not_allowed (x int)",
    "CREATE TEMP TABLE not_allowed (x int)",
    "CREATE TEMP VIEW not_allowed AS SELECT 1",
    "CREATE VIEW not_allowed AS SELECT 1",
    "CREATE MATERIALIZED VIEW not_allowed AS SELECT 1",
    "CREATE SEQUENCE not_allowed",
    "CREATE TYPE not_allowed AS (a int)",
    "CREATE SCHEMA not_allowed",
    "CREATE INDEX not_allowed ON users (first_name)",
    "CREATE FUNCTION not_allowed() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE OR REPLACE FUNCTION elearn_shard() RETURNS text LANGUAGE sql AS 'SELECT 1::text'",
    "CREATE TRIGGER not_allowed BEFORE UPDATE ON users "
    "FOR EACH ROW EXECUTE FUNCTION elearn_touch_updated_at()",
    "CREATE EXTENSION pgcrypto",
    "CREATE ROLE not_allowed",
    "ALTER TABLE users ADD COLUMN not_allowed int",
    "ALTER TABLE users DISABLE TRIGGER ALL",
    "ALTER TABLE users OWNER TO elearn_app",
    "ALTER FUNCTION elearn_shard() OWNER TO elearn_app",
    "ALTER ROLE elearn_app SUPERUSER",
    "COMMENT ON TABLE users IS 'not allowed'",
    "DROP TABLE users",
    "DROP FUNCTION elearn_shard()",
    "DROP TRIGGER IF EXISTS trg_users_updated_at ON users",
    "TRUNCATE users",
    "TRUNCATE course_seats",
    "REINDEX TABLE users",
    "CLUSTER users USING pk_users",
    "UPDATE alembic_version SET version_num = version_num",
    "DELETE FROM alembic_version",
    "SET session_replication_role = replica",
    "COPY users TO '/tmp/elearn-not-allowed'",
    "SELECT pg_read_file('postgresql.conf')",
]


@pytest.fixture(scope="module")
def app(db: Database) -> Iterator[Connection]:
    """A connection to the na primary as the application role, inside a transaction."""
    with db.cluster.engines.primary("na").engine.connect() as conn:
        yield conn


def _objects_and_owners(cluster: LocalCluster, shard: str) -> dict[str, set[str]]:
    conn = admin(cluster, cluster.state().primary_of(shard))
    try:
        with conn.cursor() as cur:
            owners: dict[str, set[str]] = {}
            queries = {
                "schema": "SELECT nspowner::regrole::text FROM pg_namespace "
                "WHERE nspname = 'public'",
                "database": "SELECT datdba::regrole::text FROM pg_database "
                "WHERE datname = current_database()",
                "tables": "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'",
                "sequences": "SELECT DISTINCT sequenceowner FROM pg_sequences "
                "WHERE schemaname = 'public'",
                "functions": "SELECT DISTINCT proowner::regrole::text FROM pg_proc "
                "WHERE pronamespace = 'public'::regnamespace",
                "types": "SELECT DISTINCT typowner::regrole::text FROM pg_type "
                "WHERE typnamespace = 'public'::regnamespace",
            }
            for kind, query in queries.items():
                cur.execute(query)
                owners[kind] = {row[0] for row in cur.fetchall()}
            return owners
    finally:
        conn.close()


def test_migrations_ran_as_the_owner_who_owns_every_object(
    migrated: Settings, cluster: LocalCluster
) -> None:
    for shard in cluster.state().shards:
        owners = _objects_and_owners(cluster, shard)
        assert owners == {
            "schema": {migrated.owner_user},
            "database": {migrated.owner_user},
            "tables": {migrated.owner_user},
            "sequences": {migrated.owner_user},
            "functions": {migrated.owner_user},
            "types": {migrated.owner_user},
        }, shard


def test_neither_the_owner_nor_the_application_role_is_privileged(
    migrated: Settings, cluster: LocalCluster
) -> None:
    conn = admin(cluster, cluster.state().primary_of("eu"))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, "
                "rolbypassrls FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname",
                ([migrated.app_user, migrated.owner_user],),
            )
            rows = cur.fetchall()
            cur.execute(
                "SELECT pg_has_role(%s, %s, 'MEMBER')", (migrated.app_user, migrated.owner_user)
            )
            app_is_owner = cur.fetchone()[0]
    finally:
        conn.close()
    assert rows == [
        (migrated.app_user, False, False, False, False, False),
        (migrated.owner_user, False, False, False, False, False),
    ]
    assert app_is_owner is False


def test_the_library_connects_as_the_application_role(db: Database) -> None:
    for shard in db.router.shards:
        with db.writer(shard) as uow:
            assert uow.execute(text("SELECT current_user"), shard=shard).scalar_one() == (
                db.settings.app_user
            )


@pytest.mark.parametrize("statement", REFUSED)
def test_the_application_role_cannot_run_ddl(app: Connection, statement: str) -> None:
    try:
        with pytest.raises(DBAPIError) as info:
            app.execute(text(statement))
        assert isinstance(info.value.orig, psycopg2.errors.InsufficientPrivilege), (
            f"{statement!r} failed with {type(info.value.orig).__name__}, not a privilege error"
        )
    finally:
        app.rollback()


def test_a_grant_by_the_application_role_grants_nothing(app: Connection) -> None:
    try:
        # Not an error in PostgreSQL, only a warning: "no privileges were granted".
        app.execute(text("GRANT SELECT ON users TO PUBLIC"))
        granted = app.execute(
            text(
                "SELECT count(*) FROM information_schema.role_table_grants "
                "WHERE grantee = 'PUBLIC' AND table_name = 'users'"
            )
        ).scalar_one()
        assert granted == 0
    finally:
        app.rollback()


def test_the_application_role_runs_dml_and_calls_the_functions(app: Connection) -> None:
    try:
        assert app.execute(text("SELECT elearn_shard()")).scalar_one() == "na"
        app.execute(
            text(
                "INSERT INTO course_categories (id, name) "
                "VALUES (elearn_new_reference_id(NULL), 'privilege check')"
            )
        )
        app.execute(
            text("UPDATE course_categories SET description = 'x' WHERE name = :n"),
            {"n": "privilege check"},
        )
        assert (
            app.execute(
                text("DELETE FROM course_categories WHERE name = :n"), {"n": "privilege check"}
            ).rowcount
            == 1
        )
        assert app.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        app.execute(text("SELECT nextval('invoice_number_seq')"))
    finally:
        app.rollback()
