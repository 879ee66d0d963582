"""Analytics: notebook-friendly DataFrames merged from every shard's replicas in parallel.

``Analytics(db)`` (attached as ``db.analytics``) is the entry point; the fan-out
(:mod:`~elearn_data.analytics.fanout`) and the merge rules
(:mod:`~elearn_data.analytics.merge`) are reusable on their own.
"""

from elearn_data.analytics.fanout import FanOut, ShardQuery
from elearn_data.analytics.merge import TopN, threshold_top_n
from elearn_data.analytics.service import Analytics

__all__ = ["Analytics", "FanOut", "ShardQuery", "TopN", "threshold_top_n"]
