"""``elearn serve``: the REST API, a thin layer over the Python API (FastAPI under uvicorn).

Each worker process holds one :class:`~elearn_data.database.Database`. Request
and response bodies are pydantic models generated from the views of
:mod:`elearn_data.repositories.views`; errors are the library's, mapped to HTTP
statuses in :mod:`elearn_data.web.errors`. Read-your-writes across workers
travels in the ``X-Elearn-Causal-Token`` header (:mod:`elearn_data.web.tokens`);
rate limits are kept in a store every worker shares
(:mod:`elearn_data.web.ratelimit`).

Needs the ``web`` extra: ``pip install 'elearn-data[web]'``.
"""

from elearn_data.web.app import create_app

__all__ = ["create_app"]
