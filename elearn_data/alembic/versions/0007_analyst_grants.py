"""Analyst role grants: SELECT on the analyst-visible columns only, no TEMP.

The read-only role of ``db.analytics.sql`` (``Settings.analyst_user``) is
cluster-wide and made by the cluster set-up (or the operator); this revision
gives it, in each shard database, SELECT on exactly the columns that
:mod:`elearn_data.analytics.visibility` shows -- learner, home and catalog
tables without secret columns (no password hash, no email directory, no
two-phase decisions, no outbox) -- and takes TEMP from it. The grants are
computed from the models and the columns present, and ``env.py`` re-applies
them after every later run, so a table added by a later revision is granted
(or hidden) by its placement alone. Without the role, nothing is granted
(logged). Downgrade revokes every right of the role in the database.

Revision ID: 0007
Revises: 0003
Create Date: 2026-12-01 22:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import context, op

from elearn_data.analytics.grants import grant_analyst, migration_role, revoke_analyst

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if context.is_offline_mode():
        return
    # As granted at this revision: personal columns included (revision 0010 takes them).
    grant_analyst(op.get_bind(), migration_role(), personal=True)


def downgrade() -> None:
    if context.is_offline_mode():
        return
    revoke_analyst(op.get_bind(), migration_role())
