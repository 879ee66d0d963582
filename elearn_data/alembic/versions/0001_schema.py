"""Schema: every table, constraint and index of elearn_data (the same on every shard).

Revision ID: 0001
Revises:
Create Date: 2026-11-22 03:38:24.980449
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "content_outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('ensure_preferences', 'delete_preferences', 'delete_course_content')",
            name=op.f("ck_content_outbox_kind"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_content_outbox_attempts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_outbox")),
    )
    op.create_index(
        "ix_content_outbox_pending",
        "content_outbox",
        ["id"],
        unique=False,
        postgresql_where=sa.text("processed_at IS NULL"),
    )
    op.create_table(
        "course_categories",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("parent_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "length(btrim(name)) > 0", name=op.f("ck_course_categories_name_not_blank")
        ),
        sa.CheckConstraint(
            "parent_id IS NULL OR parent_id <> id", name=op.f("ck_course_categories_not_own_parent")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["course_categories.id"],
            name=op.f("fk_course_categories_parent_id_course_categories"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_course_categories")),
        sa.UniqueConstraint("name", name=op.f("uq_course_categories_name")),
    )
    op.create_index(
        "ix_course_categories_parent_id", "course_categories", ["parent_id"], unique=False
    )
    op.create_table(
        "email_directory",
        sa.Column("email_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("region", sa.String(length=20), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "region IN ('north_america', 'south_america', 'europe', 'africa', 'asia', 'oceania')",
            name=op.f("ck_email_directory_region"),
        ),
        sa.CheckConstraint(
            "octet_length(email_hash) = 32", name=op.f("ck_email_directory_hash_length")
        ),
        sa.PrimaryKeyConstraint("email_hash", name=op.f("pk_email_directory")),
        sa.UniqueConstraint("user_id", name=op.f("uq_email_directory_user_id")),
    )
    op.create_table(
        "shard_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_shard_meta")),
    )
    op.create_table(
        "twophase_decisions",
        sa.Column("gid", sa.String(length=200), nullable=False),
        sa.Column("committed", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("gid", name=op.f("pk_twophase_decisions")),
    )
    op.create_index(
        "ix_twophase_decisions_created_at", "twophase_decisions", ["created_at"], unique=False
    )
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), server_default="student", nullable=False),
        sa.Column("region", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_login", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("position('@' in email) > 1", name=op.f("ck_users_email_shape")),
        sa.CheckConstraint(
            "region IN ('north_america', 'south_america', 'europe', 'africa', 'asia', 'oceania')",
            name=op.f("ck_users_region"),
        ),
        sa.CheckConstraint(
            "role IN ('student', 'instructor', 'admin')", name=op.f("ck_users_role")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'inactive', 'suspended')", name=op.f("ck_users_status")
        ),
        sa.CheckConstraint("email = lower(btrim(email))", name=op.f("ck_users_email_normalised")),
        sa.CheckConstraint(
            "length(btrim(first_name)) > 0", name=op.f("ck_users_first_name_not_blank")
        ),
        sa.CheckConstraint(
            "length(btrim(last_name)) > 0", name=op.f("ck_users_last_name_not_blank")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_index("ix_users_created_at", "users", ["created_at"], unique=False)
    op.create_index("ix_users_region_role", "users", ["region", "role"], unique=False)
    op.create_table(
        "courses",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("instructor_id", sa.UUID(), nullable=False),
        sa.Column("category_id", sa.UUID(), nullable=True),
        sa.Column("level", sa.String(length=20), server_default="beginner", nullable=False),
        sa.Column("price", sa.Numeric(precision=10, scale=2), server_default="0", nullable=False),
        sa.Column("currency", sa.String(length=3), server_default="USD", nullable=False),
        sa.Column("status", sa.String(length=20), server_default="draft", nullable=False),
        sa.Column("max_enrollments", sa.Integer(), nullable=True),
        sa.Column("duration_hours", sa.Numeric(precision=6, scale=1), nullable=True),
        sa.Column("language", sa.String(length=50), server_default="English", nullable=False),
        sa.Column("lesson_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(
                (
                    "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
                    "setweight(to_tsvector('simple'::regconfig, coalesce(code, '')), 'A') || "
                    "setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')"
                ),
                persisted=True,
            ),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "code ~ '^[A-Z0-9][A-Z0-9_.-]{1,31}$'", name=op.f("ck_courses_code_shape")
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_courses_currency_code")),
        sa.CheckConstraint(
            "level IN ('beginner', 'intermediate', 'advanced')", name=op.f("ck_courses_level")
        ),
        sa.CheckConstraint(
            "status <> 'published' OR published_at IS NOT NULL",
            name=op.f("ck_courses_published_at"),
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'published', 'archived')", name=op.f("ck_courses_status")
        ),
        sa.CheckConstraint(
            "duration_hours IS NULL OR duration_hours >= 0", name=op.f("ck_courses_duration")
        ),
        sa.CheckConstraint("length(btrim(title)) > 0", name=op.f("ck_courses_title_not_blank")),
        sa.CheckConstraint("lesson_count >= 0", name=op.f("ck_courses_lesson_count")),
        sa.CheckConstraint(
            "max_enrollments IS NULL OR max_enrollments > 0", name=op.f("ck_courses_capacity")
        ),
        sa.CheckConstraint("price >= 0", name=op.f("ck_courses_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["course_categories.id"],
            name=op.f("fk_courses_category_id_course_categories"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courses")),
        sa.UniqueConstraint("code", name=op.f("uq_courses_code")),
    )
    op.create_index("ix_courses_category_id", "courses", ["category_id"], unique=False)
    op.create_index("ix_courses_instructor_id", "courses", ["instructor_id"], unique=False)
    op.create_index(
        "ix_courses_published_at",
        "courses",
        [sa.literal_column("published_at DESC")],
        unique=False,
        postgresql_where=sa.text("status = 'published'"),
    )
    op.create_index(
        "ix_courses_search_vector",
        "courses",
        ["search_vector"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index("ix_courses_status_level", "courses", ["status", "level"], unique=False)
    op.create_index("ix_courses_status_price", "courses", ["status", "price"], unique=False)
    op.create_table(
        "payment_methods",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("method_type", sa.String(length=20), nullable=False),
        sa.Column("card_last_four", sa.String(length=4), nullable=True),
        sa.Column("card_brand", sa.String(length=20), nullable=True),
        sa.Column("expiry_month", sa.SmallInteger(), nullable=True),
        sa.Column("expiry_year", sa.SmallInteger(), nullable=True),
        sa.Column("is_default", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "NOT (method_type IN ('credit_card', 'debit_card')) OR card_last_four IS NOT NULL",
            name=op.f("ck_payment_methods_cards_have_last_four"),
        ),
        sa.CheckConstraint(
            "card_last_four ~ '^[0-9]{4}$'", name=op.f("ck_payment_methods_card_last_four")
        ),
        sa.CheckConstraint(
            "method_type IN ('credit_card', 'debit_card', 'paypal', 'bank_transfer')",
            name=op.f("ck_payment_methods_method_type"),
        ),
        sa.CheckConstraint(
            "expiry_month BETWEEN 1 AND 12", name=op.f("ck_payment_methods_expiry_month")
        ),
        sa.CheckConstraint(
            "expiry_year BETWEEN 2000 AND 2100", name=op.f("ck_payment_methods_expiry_year")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_payment_methods_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_methods")),
    )
    op.create_index("ix_payment_methods_user_id", "payment_methods", ["user_id"], unique=False)
    op.create_index(
        "uq_payment_methods_user_id_default",
        "payment_methods",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text("is_default"),
    )
    op.create_table(
        "user_profiles",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("country", sa.String(length=100), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("bio", sa.Text(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("language", sa.String(length=35), nullable=True),
        sa.Column("avatar_url", sa.String(length=500), nullable=True),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "avatar_url ~ '^https?://'", name=op.f("ck_user_profiles_avatar_url_http")
        ),
        sa.CheckConstraint(
            "phone ~ '^[0-9+(). x-]{3,32}$'", name=op.f("ck_user_profiles_phone_shape")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_profiles_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_profiles")),
    )
    op.create_index("ix_user_profiles_country", "user_profiles", ["country"], unique=False)
    op.create_table(
        "course_modules",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("module_order", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "length(btrim(title)) > 0", name=op.f("ck_course_modules_title_not_blank")
        ),
        sa.CheckConstraint("module_order > 0", name=op.f("ck_course_modules_order_positive")),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_course_modules_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_course_modules")),
        sa.UniqueConstraint(
            "course_id", "module_order", name=op.f("uq_course_modules_course_id_module_order")
        ),
        sa.UniqueConstraint("id", "course_id", name=op.f("uq_course_modules_id_course_id")),
    )
    op.create_table(
        "course_seats",
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("taken", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "capacity IS NULL OR capacity > 0", name=op.f("ck_course_seats_capacity_positive")
        ),
        sa.CheckConstraint(
            "capacity IS NULL OR taken <= capacity", name=op.f("ck_course_seats_within_capacity")
        ),
        sa.CheckConstraint("taken >= 0", name=op.f("ck_course_seats_taken_not_negative")),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_course_seats_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("course_id", name=op.f("pk_course_seats")),
    )
    op.create_table(
        "course_stats",
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("enrollment_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("active_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("completed_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("dropped_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rating_sum", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rating_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "enrollment_count = active_count + completed_count",
            name=op.f("ck_course_stats_live_enrollments"),
        ),
        sa.CheckConstraint(
            "enrollment_count >= 0 AND active_count >= 0 AND completed_count >= 0 "
            "AND dropped_count >= 0",
            name=op.f("ck_course_stats_counts_not_negative"),
        ),
        sa.CheckConstraint(
            "rating_count >= 0 AND rating_sum >= rating_count", name=op.f("ck_course_stats_rating")
        ),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_course_stats_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("course_id", name=op.f("pk_course_stats")),
    )
    op.create_index(
        "ix_course_stats_enrollment_count",
        "course_stats",
        [sa.literal_column("enrollment_count DESC")],
        unique=False,
    )
    op.create_table(
        "enrollments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column(
            "progress_percent", sa.Numeric(precision=5, scale=2), server_default="0", nullable=False
        ),
        sa.Column("completed_lessons", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "enrolled_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dropped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("certificate_url", sa.String(length=500), nullable=True),
        sa.Column("certificate_issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "certificate_url IS NULL OR status = 'completed'",
            name=op.f("ck_enrollments_certificate_needs_completion"),
        ),
        sa.CheckConstraint(
            "status <> 'completed' OR completed_at IS NOT NULL",
            name=op.f("ck_enrollments_completed_at"),
        ),
        sa.CheckConstraint(
            "status <> 'dropped' OR dropped_at IS NOT NULL", name=op.f("ck_enrollments_dropped_at")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'completed', 'dropped')", name=op.f("ck_enrollments_status")
        ),
        sa.CheckConstraint("completed_lessons >= 0", name=op.f("ck_enrollments_completed_lessons")),
        sa.CheckConstraint(
            "progress_percent BETWEEN 0 AND 100", name=op.f("ck_enrollments_progress_percent")
        ),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_enrollments_course_id_courses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_enrollments_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
        sa.UniqueConstraint(
            "id", "user_id", "course_id", name=op.f("uq_enrollments_id_user_id_course_id")
        ),
    )
    op.create_index(
        "ix_enrollments_course_id_status", "enrollments", ["course_id", "status"], unique=False
    )
    op.create_index("ix_enrollments_enrolled_at", "enrollments", ["enrolled_at"], unique=False)
    op.create_index(
        "ix_enrollments_user_id_enrolled_at",
        "enrollments",
        ["user_id", sa.literal_column("enrolled_at DESC")],
        unique=False,
    )
    op.create_index(
        "uq_enrollments_user_id_course_id_live",
        "enrollments",
        ["user_id", "course_id"],
        unique=True,
        postgresql_where=sa.text("status <> 'dropped'"),
    )
    op.create_table(
        "transactions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("payment_method_id", sa.UUID(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), server_default="USD", nullable=False),
        sa.Column("type", sa.String(length=20), server_default="purchase", nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("gateway_transaction_id", sa.String(length=100), nullable=True),
        sa.Column("refund_of", sa.UUID(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(type = 'refund') = (refund_of IS NOT NULL)", name=op.f("ck_transactions_refund_link")
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_transactions_currency_code")),
        sa.CheckConstraint(
            "status IN ('pending', 'completed', 'failed', 'refunded')",
            name=op.f("ck_transactions_status"),
        ),
        sa.CheckConstraint(
            "status NOT IN ('completed', 'refunded') OR completed_at IS NOT NULL",
            name=op.f("ck_transactions_completed_at"),
        ),
        sa.CheckConstraint(
            "status NOT IN ('completed', 'refunded') OR type = 'refund' "
            "OR gateway_transaction_id IS NOT NULL",
            name=op.f("ck_transactions_gateway_id_on_completion"),
        ),
        sa.CheckConstraint("type IN ('purchase', 'refund')", name=op.f("ck_transactions_type")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_transactions_amount_positive")),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_transactions_course_id_courses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["payment_method_id"],
            ["payment_methods.id"],
            name=op.f("fk_transactions_payment_method_id_payment_methods"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["refund_of"],
            ["transactions.id"],
            name=op.f("fk_transactions_refund_of_transactions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_transactions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transactions")),
        sa.UniqueConstraint("refund_of", name=op.f("uq_transactions_refund_of")),
        sa.UniqueConstraint(
            "user_id", "idempotency_key", name=op.f("uq_transactions_user_id_idempotency_key")
        ),
    )
    op.create_index(
        "ix_transactions_course_id_status", "transactions", ["course_id", "status"], unique=False
    )
    op.create_index(
        "ix_transactions_payment_method_id", "transactions", ["payment_method_id"], unique=False
    )
    op.create_index(
        "ix_transactions_pending_created_at",
        "transactions",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_transactions_status_completed_at",
        "transactions",
        ["status", "completed_at"],
        unique=False,
    )
    op.create_index(
        "ix_transactions_user_id_created_at",
        "transactions",
        ["user_id", sa.literal_column("created_at DESC")],
        unique=False,
    )
    op.create_index(
        "uq_transactions_gateway_transaction_id",
        "transactions",
        ["gateway_transaction_id"],
        unique=True,
        postgresql_where=sa.text("gateway_transaction_id IS NOT NULL"),
    )
    op.create_table(
        "course_lessons",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("module_id", sa.UUID(), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("lesson_order", sa.Integer(), nullable=False),
        sa.Column("lesson_type", sa.String(length=20), nullable=False),
        sa.Column("content_id", sa.String(length=64), nullable=True),
        sa.Column("content_status", sa.String(length=16), server_default="none", nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=True),
        sa.Column("is_preview", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(content_id IS NULL) = (content_status = 'none')",
            name=op.f("ck_course_lessons_content_status_matches"),
        ),
        sa.CheckConstraint(
            "content_status IN ('none', 'pending', 'ready')",
            name=op.f("ck_course_lessons_content_status"),
        ),
        sa.CheckConstraint(
            "lesson_type IN ('video', 'reading', 'quiz', 'assignment')",
            name=op.f("ck_course_lessons_lesson_type"),
        ),
        sa.CheckConstraint(
            "duration_minutes IS NULL OR duration_minutes >= 0",
            name=op.f("ck_course_lessons_duration"),
        ),
        sa.CheckConstraint(
            "length(btrim(title)) > 0", name=op.f("ck_course_lessons_title_not_blank")
        ),
        sa.CheckConstraint("lesson_order > 0", name=op.f("ck_course_lessons_order_positive")),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_course_lessons_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["module_id", "course_id"],
            ["course_modules.id", "course_modules.course_id"],
            name="fk_course_lessons_module_course",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_course_lessons")),
        sa.UniqueConstraint(
            "module_id", "lesson_order", name=op.f("uq_course_lessons_module_id_lesson_order")
        ),
    )
    op.create_index(
        "ix_course_lessons_content_id",
        "course_lessons",
        ["content_id"],
        unique=False,
        postgresql_where=sa.text("content_id IS NOT NULL"),
    )
    op.create_index("ix_course_lessons_course_id", "course_lessons", ["course_id"], unique=False)
    op.create_table(
        "course_reviews",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("enrollment_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("review_text", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name=op.f("ck_course_reviews_rating_range")),
        sa.CheckConstraint(
            "review_text IS NULL OR length(review_text) <= 5000",
            name=op.f("ck_course_reviews_text_length"),
        ),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_course_reviews_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id", "user_id", "course_id"],
            ["enrollments.id", "enrollments.user_id", "enrollments.course_id"],
            name="fk_course_reviews_enrollment",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_course_reviews")),
        sa.UniqueConstraint("enrollment_id", name=op.f("uq_course_reviews_enrollment_id")),
    )
    op.create_index(
        "ix_course_reviews_course_id_created_at",
        "course_reviews",
        ["course_id", sa.literal_column("created_at DESC")],
        unique=False,
    )
    op.create_index("ix_course_reviews_user_id", "course_reviews", ["user_id"], unique=False)
    op.create_table(
        "invoices",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("transaction_id", sa.UUID(), nullable=False),
        sa.Column("invoice_number", sa.String(length=40), nullable=False),
        sa.Column("subtotal", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("tax", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), server_default="USD", nullable=False),
        sa.Column("status", sa.String(length=20), server_default="issued", nullable=False),
        sa.Column("issued_on", sa.Date(), server_default=sa.text("CURRENT_DATE"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_invoices_currency_code")),
        sa.CheckConstraint("status IN ('issued', 'paid', 'void')", name=op.f("ck_invoices_status")),
        sa.CheckConstraint(
            "subtotal >= 0 AND tax >= 0", name=op.f("ck_invoices_amounts_not_negative")
        ),
        sa.CheckConstraint("total = subtotal + tax", name=op.f("ck_invoices_total_adds_up")),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["transactions.id"],
            name=op.f("fk_invoices_transaction_id_transactions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("invoice_number", name=op.f("uq_invoices_invoice_number")),
        sa.UniqueConstraint("transaction_id", name=op.f("uq_invoices_transaction_id")),
    )
    op.create_index("ix_invoices_issued_on", "invoices", ["issued_on"], unique=False)
    op.create_table(
        "lesson_progress",
        sa.Column("enrollment_id", sa.UUID(), nullable=False),
        sa.Column("lesson_id", sa.UUID(), nullable=False),
        sa.Column("completed", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("time_spent_minutes", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "last_accessed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "completed = (completed_at IS NOT NULL)", name=op.f("ck_lesson_progress_completed_at")
        ),
        sa.CheckConstraint("time_spent_minutes >= 0", name=op.f("ck_lesson_progress_time_spent")),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_lesson_progress_enrollment_id_enrollments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lesson_id"],
            ["course_lessons.id"],
            name=op.f("fk_lesson_progress_lesson_id_course_lessons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("enrollment_id", "lesson_id", name=op.f("pk_lesson_progress")),
    )
    op.create_index("ix_lesson_progress_lesson_id", "lesson_progress", ["lesson_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_lesson_progress_lesson_id", table_name="lesson_progress")
    op.drop_table("lesson_progress")
    op.drop_index("ix_invoices_issued_on", table_name="invoices")
    op.drop_table("invoices")
    op.drop_index("ix_course_reviews_user_id", table_name="course_reviews")
    op.drop_index("ix_course_reviews_course_id_created_at", table_name="course_reviews")
    op.drop_table("course_reviews")
    op.drop_index("ix_course_lessons_course_id", table_name="course_lessons")
    op.drop_index(
        "ix_course_lessons_content_id",
        table_name="course_lessons",
        postgresql_where=sa.text("content_id IS NOT NULL"),
    )
    op.drop_table("course_lessons")
    op.drop_index(
        "uq_transactions_gateway_transaction_id",
        table_name="transactions",
        postgresql_where=sa.text("gateway_transaction_id IS NOT NULL"),
    )
    op.drop_index("ix_transactions_user_id_created_at", table_name="transactions")
    op.drop_index("ix_transactions_status_completed_at", table_name="transactions")
    op.drop_index(
        "ix_transactions_pending_created_at",
        table_name="transactions",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index("ix_transactions_payment_method_id", table_name="transactions")
    op.drop_index("ix_transactions_course_id_status", table_name="transactions")
    op.drop_table("transactions")
    op.drop_index(
        "uq_enrollments_user_id_course_id_live",
        table_name="enrollments",
        postgresql_where=sa.text("status <> 'dropped'"),
    )
    op.drop_index("ix_enrollments_user_id_enrolled_at", table_name="enrollments")
    op.drop_index("ix_enrollments_enrolled_at", table_name="enrollments")
    op.drop_index("ix_enrollments_course_id_status", table_name="enrollments")
    op.drop_table("enrollments")
    op.drop_index("ix_course_stats_enrollment_count", table_name="course_stats")
    op.drop_table("course_stats")
    op.drop_table("course_seats")
    op.drop_table("course_modules")
    op.drop_index("ix_user_profiles_country", table_name="user_profiles")
    op.drop_table("user_profiles")
    op.drop_index(
        "uq_payment_methods_user_id_default",
        table_name="payment_methods",
        postgresql_where=sa.text("is_default"),
    )
    op.drop_index("ix_payment_methods_user_id", table_name="payment_methods")
    op.drop_table("payment_methods")
    op.drop_index("ix_courses_status_price", table_name="courses")
    op.drop_index("ix_courses_status_level", table_name="courses")
    op.drop_index("ix_courses_search_vector", table_name="courses", postgresql_using="gin")
    op.drop_index(
        "ix_courses_published_at",
        table_name="courses",
        postgresql_where=sa.text("status = 'published'"),
    )
    op.drop_index("ix_courses_instructor_id", table_name="courses")
    op.drop_index("ix_courses_category_id", table_name="courses")
    op.drop_table("courses")
    op.drop_index("ix_users_region_role", table_name="users")
    op.drop_index("ix_users_created_at", table_name="users")
    op.drop_table("users")
    op.drop_index("ix_twophase_decisions_created_at", table_name="twophase_decisions")
    op.drop_table("twophase_decisions")
    op.drop_table("shard_meta")
    op.drop_table("email_directory")
    op.drop_index("ix_course_categories_parent_id", table_name="course_categories")
    op.drop_table("course_categories")
    op.drop_index(
        "ix_content_outbox_pending",
        table_name="content_outbox",
        postgresql_where=sa.text("processed_at IS NULL"),
    )
    op.drop_table("content_outbox")
