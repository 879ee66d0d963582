"""SQLAlchemy 2.0 models of every PostgreSQL table (see docs/schema.md)."""

from elearn_data.models.assessments import (
    Assessment,
    AssessmentAttempt,
    AssessmentQuestion,
    AttemptAnswer,
)
from elearn_data.models.base import Base, Placement, placement_of, shard_key_of
from elearn_data.models.billing import Invoice, PaymentMethod, Transaction
from elearn_data.models.catalog import (
    Course,
    CourseCategory,
    CourseLesson,
    CourseModule,
    CourseSeats,
)
from elearn_data.models.directory import EmailDirectoryEntry, GatewayChargeEntry
from elearn_data.models.gamification import (
    Badge,
    BadgeAward,
    LearnerPoints,
    PointRule,
    PointsLedgerEntry,
)
from elearn_data.models.learning import CourseReview, CourseStats, Enrollment, LessonProgress
from elearn_data.models.system import ContentOutbox, ShardMeta, TwoPhaseDecision
from elearn_data.models.users import LoginThrottle, User, UserProfile

__all__ = [
    "Assessment",
    "AssessmentAttempt",
    "AssessmentQuestion",
    "AttemptAnswer",
    "Badge",
    "BadgeAward",
    "Base",
    "ContentOutbox",
    "Course",
    "CourseCategory",
    "CourseLesson",
    "CourseModule",
    "CourseReview",
    "CourseSeats",
    "CourseStats",
    "EmailDirectoryEntry",
    "Enrollment",
    "GatewayChargeEntry",
    "Invoice",
    "LearnerPoints",
    "LessonProgress",
    "LoginThrottle",
    "PaymentMethod",
    "Placement",
    "PointRule",
    "PointsLedgerEntry",
    "ShardMeta",
    "Transaction",
    "TwoPhaseDecision",
    "User",
    "UserProfile",
    "placement_of",
    "shard_key_of",
]
