"""elearn_data: the data platform of a global e-learning product.

PostgreSQL sharded by region (each shard a primary with streaming replicas) for
learners, courses, enrollments, progress, reviews and payments; MongoDB for
course content and learner preferences.

    import elearn_data

    with elearn_data.connect() as db:
        user_id = db.users.register(email=..., password=..., first_name=...,
                                    last_name=..., region="europe")
"""

from elearn_data import errors
from elearn_data.config import Settings, load_settings
from elearn_data.database import Database, connect
from elearn_data.regions import Region
from elearn_data.repositories.views import (
    CategoryView,
    CourseView,
    EnrollmentView,
    InvoiceView,
    LessonProgressView,
    LessonView,
    ModuleView,
    PaymentMethodView,
    ProgressView,
    ReviewView,
    TransactionView,
    UserView,
)
from elearn_data.sharding.consistency import CausalToken

__all__ = [
    "CategoryView",
    "CausalToken",
    "CourseView",
    "Database",
    "EnrollmentView",
    "InvoiceView",
    "LessonProgressView",
    "LessonView",
    "ModuleView",
    "PaymentMethodView",
    "ProgressView",
    "Region",
    "ReviewView",
    "Settings",
    "TransactionView",
    "UserView",
    "connect",
    "errors",
    "load_settings",
]
