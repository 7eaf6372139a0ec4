"""The CLI's way to a running service: the operators' HTTP API with a bearer token.

``switchboard --url URL --token T …`` sends the same requests an operator's script would;
the answers have the same JSON shapes as the local commands, so one printer serves both.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from multidict import CIMultiDict

_TIMEOUT = aiohttp.ClientTimeout(total=15)


class RemoteError(RuntimeError):
    """The service refused the request (4xx/5xx), with its message and problems."""

    def __init__(self, status: int, message: str, problems: list[dict[str, str]]) -> None:
        lines = [f"{p.get('path')}: {p.get('message')}" for p in problems]
        super().__init__("\n".join([f"{message} (HTTP {status})", *lines]))
        self.status = status
        self.problems = problems


class Remote:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[Any, CIMultiDict[str]]:
        """The decoded JSON answer and its headers; :class:`RemoteError` on refusal."""
        all_headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        async with (
            aiohttp.ClientSession(timeout=_TIMEOUT) as session,
            session.request(
                method, self.url + path, json=json, params=params, headers=all_headers
            ) as response,
        ):
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = {"error": (await response.text()).strip() or response.reason}
            if response.status >= 400:
                if not isinstance(body, dict):
                    body = {"error": str(body)}
                raise RemoteError(
                    response.status,
                    str(body.get("error") or response.reason),
                    list(body.get("problems") or []),
                )
            return body, CIMultiDict(response.headers)
