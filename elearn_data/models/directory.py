"""The global email directory: keyed hash of an email -> (user id, region).

Rows are placed by the hash itself (like a Vitess lookup vindex), so the
directory grows with the shards and no shard holds every email. It never holds
the raw email: only an HMAC-SHA256 of the normalised address under a key from
the settings. The user row and its directory row commit together (two-phase
commit when they live on different shards), so the directory never names a user
that does not exist.
"""

from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from elearn_data.models.base import Base, Placement, created_at, one_of, placed
from elearn_data.regions import REGION_NAMES


class EmailDirectoryEntry(Base):
    """Where the user with a given email lives."""

    __tablename__ = "email_directory"
    __table_args__ = (
        CheckConstraint("octet_length(email_hash) = 32", name="hash_length"),
        CheckConstraint(one_of("region", REGION_NAMES), name="region"),
        placed(Placement.DIRECTORY, "email_hash"),
    )

    email_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    region: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[created_at]


class GatewayChargeEntry(Base):
    """Which transaction a payment gateway's charge id completed, platform-wide.

    A gateway charge id pays for one purchase only, whatever the learner's
    region: the row is placed by a hash of the id (like the email directory)
    and written in the same unit of work that completes the purchase, so two
    shards can never both complete a purchase with one charge.
    """

    __tablename__ = "gateway_charges"
    __table_args__ = (
        CheckConstraint("octet_length(gateway_hash) = 32", name="hash_length"),
        placed(Placement.DIRECTORY, "gateway_hash"),
    )

    gateway_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    gateway_transaction_id: Mapped[str] = mapped_column(String(100))
    transaction_id: Mapped[uuid.UUID]
    created_at: Mapped[created_at]
