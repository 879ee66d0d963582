"""elearn_data: the data platform of a global e-learning product.

PostgreSQL sharded by region (each shard a primary with streaming replicas) for
learners, courses, enrollments, progress, reviews and payments; MongoDB for
course content and learner preferences.
"""

from elearn_data.config import Settings, load_settings
from elearn_data.regions import Region

__all__ = ["Region", "Settings", "load_settings"]
