"""A small JSON client of the REST API over one keep-alive connection (stdlib only).

Used by the benchmark and the tests; it follows the causal token the way a
browser client would keep a cookie: every response's ``X-Elearn-Causal-Token``
replaces the one it sends next (``follow_causal=True``).
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

CAUSAL_HEADER = "X-Elearn-Causal-Token"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def worker(self) -> str:
        return self.headers.get("x-elearn-worker", "")

    @property
    def causal(self) -> str | None:
        return self.headers.get(CAUSAL_HEADER.lower())


class ApiClient:
    """One HTTP/1.1 connection; not thread-safe (one per thread)."""

    def __init__(self, host: str, port: int, *, timeout_s: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.access_token: str | None = None
        self.causal: str | None = None
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        return self._conn

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        send_causal: bool = True,
        follow_causal: bool = True,
    ) -> Reply:
        sent = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if auth and self.access_token:
            sent["Authorization"] = f"Bearer {self.access_token}"
        if send_causal and self.causal:
            sent[CAUSAL_HEADER] = self.causal
        sent.update(headers or {})
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=payload, headers=sent)
                response = conn.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: reconnect once.
                self.close()
                if attempt == 2:
                    raise
        got = {k.lower(): v for k, v in response.getheaders()}
        reply = Reply(response.status, got, json.loads(raw) if raw else None)
        if follow_causal and reply.causal:
            self.causal = reply.causal
        return reply

    def login(self, email: str, password: str) -> Reply:
        reply = self.request(
            "POST", "/v1/auth/token", {"email": email, "password": password}, auth=False
        )
        if reply.status == 200:
            self.access_token = reply.body["access_token"]
        return reply

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
