"""Unit-test settings: Hypothesis without a per-example deadline.

The machine is shared (several suites at once on 2 cores): a deadline is a
wall-clock assertion that fails on load, not on a bug.
"""

from hypothesis import settings

settings.register_profile("elearn-unit", deadline=None)
settings.load_profile("elearn-unit")
