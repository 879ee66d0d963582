"""Analyst role: no personal data (email, names, phone, birth date, card details).

Analysts need aggregates and joins across learners, not whom to contact. From
this revision on the read-only analyst role (``Settings.analyst_user``) has no
SELECT on the columns the models declare with ``info=PERSONAL`` (``users.email``,
``first_name``, ``last_name``; ``user_profiles.phone``, ``bio``, ``avatar_url``,
``date_of_birth``; ``payment_methods.card_last_four``, ``expiry_month``,
``expiry_year``); ``user_id`` still joins learners. Nothing derived from them is
exposed instead. The grants are recomputed from the models
(:func:`elearn_data.analytics.grants.grant_analyst`); downgrade gives back the
grants of revision 0007 (personal columns included). Without the role, nothing
is granted (logged).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import context, op

from elearn_data.analytics.grants import grant_analyst, migration_role

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if context.is_offline_mode():
        return
    grant_analyst(op.get_bind(), migration_role(), personal=False)


def downgrade() -> None:
    if context.is_offline_mode():
        return
    grant_analyst(op.get_bind(), migration_role(), personal=True)
