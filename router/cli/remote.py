"""The commands' way to a running service: the operators' HTTP API with a bearer token.

``switchboard --url URL --token T …`` sends the same requests an operator's script would;
the answers have the same JSON shapes as the local commands, so one printer serves both.
The service records the token's name as the actor of a change, so ``--actor`` is not sent.
This module is imported only with ``--url``: the HTTP client would cost every local command
(the on-call person's rollback first) a quarter of a second.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from multidict import CIMultiDict

from router.cli.backend import JSON, Classified, Cutover, Diff, Refused, Rollback
from router.core.classify import Classifier
from router.core.document import RoutingDocument, document_data
from router.core.durations import format_duration
from router.core.migration import PlanStep
from router.core.report import Report
from router.core.sla import Sla
from router.core.staffing import Staffing, Target
from router.core.statement import Month, Statement
from router.service.records import InteractionSearch
from router.service.views import STATUS_CONVERSATIONS

_TIMEOUT = aiohttp.ClientTimeout(total=15)


def _database_only(what: str) -> Refused:
    return Refused(f"{what} works on the database only: drop --url")


class RemoteError(Refused):
    """The service refused the request (4xx/5xx), with its message and problems."""

    def __init__(self, status: int, message: str, problems: list[dict[str, str]]) -> None:
        lines = [f"{p.get('path')}: {p.get('message')}" for p in problems]
        super().__init__("\n".join([f"{message} (HTTP {status})", *lines]))
        self.status = status
        self.problems = problems


class Remote:
    """One service, one session, one token."""

    def __init__(self, url: str, token: str, session: aiohttp.ClientSession) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.session = session

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
        try:
            async with self.session.request(
                method, self.url + path, json=json, params=params, headers=all_headers
            ) as response:
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
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Refused(f"cannot reach {self.url}: {exc}") from exc

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return (await self.request("GET", path, params=params))[0]

    async def post(self, path: str, body: Any) -> Any:
        return (await self.request("POST", path, json=body))[0]


class RemoteBackend:
    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    async def status(self, *, conversations: int | None) -> JSON:
        # the default is not sent: a service from before the parameter refuses unknown ones
        listed = "all" if conversations is None else str(conversations)
        params = None if conversations == STATUS_CONVERSATIONS else {"conversations": listed}
        answer: JSON = await self.remote.get("/api/status", params)
        return answer

    async def interactions(self, search: InteractionSearch, *, customer: str | None) -> list[JSON]:
        filters: dict[str, str | int] = {}
        if search.limit is not None:
            filters["limit"] = search.limit
        if search.since is not None:
            filters["since"] = search.since.isoformat()
        for name in ("channel", "provider_id", "destination", "category", "outcome", "before"):
            value = getattr(search, name)
            if value is not None:
                filters[name] = value
        if customer is None:
            # nothing personal to hide: the GET, which services from before the POST know
            params = {name: str(value) for name, value in filters.items()}
            answer: list[JSON] = await self.remote.get("/api/interactions", params)
            return answer
        # hashed by the service, with its own secret; in the body, because a query string
        # is part of the URL, which proxies and load balancers log (SPEC §6)
        try:
            found: list[JSON] = await self.remote.post(
                "/api/interactions/search", {**filters, "customer": customer}
            )
        except RemoteError as exc:
            if exc.status in (404, 405):  # never retried as a GET: the key would be in its URL
                raise Refused(
                    f"{self.remote.url} cannot search by customer without the number or "
                    "address in a URL (no POST /api/interactions/search): upgrade the service"
                ) from exc
            raise
        return found

    async def interaction(self, interaction_id: int) -> JSON | None:
        try:
            answer: JSON = await self.remote.get(f"/api/interactions/{interaction_id}")
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise
        return answer

    async def retention(self, *, days: int | None, dry_run: bool) -> JSON:
        raise _database_only("retention run")

    async def report(self, *, since: datetime, until: datetime) -> Report:
        # resolved by the command, like interactions --since: "7d" means 7 days before it
        params = {"since": since.isoformat(), "until": until.isoformat()}
        answer = await self.remote.get("/api/report", params)
        try:
            return Report.model_validate(answer)
        except ValueError as exc:
            raise Refused(f"the service answered an unexpected report: {exc}") from exc

    async def statement(self, month: Month | None) -> Statement:
        # without a month the service picks the previous one in its routing timezone
        params = {} if month is None else {"month": month.text}
        answer = await self.remote.get("/api/statement", params)
        try:
            return Statement.model_validate(answer)
        except ValueError as exc:
            raise Refused(f"the service answered an unexpected statement: {exc}") from exc

    async def staffing(
        self, *, since: datetime, until: datetime, target: Target, patience: timedelta | None
    ) -> Staffing:
        # the period resolved by the command, as for report; the CSV is rendered here
        params = {"since": since.isoformat(), "until": until.isoformat(), "target": target.text}
        if patience is not None:
            params["patience"] = format_duration(patience)
        answer = await self.remote.get("/api/staffing", params)
        try:
            return Staffing.model_validate(answer)
        except ValueError as exc:
            raise Refused(f"the service answered an unexpected staffing: {exc}") from exc

    async def sla(self, *, since: datetime, until: datetime) -> Sla:
        # the period resolved by the command, as for report; the CSV is rendered here
        params = {"since": since.isoformat(), "until": until.isoformat()}
        answer = await self.remote.get("/api/sla", params)
        try:
            return Sla.model_validate(answer)
        except ValueError as exc:
            raise Refused(f"the service answered unexpected service levels: {exc}") from exc

    async def document(self, number: int | None) -> JSON:
        params = {} if number is None else {"version": str(number)}
        answer: JSON = await self.remote.get("/api/routing", params)
        return answer

    async def history(self, limit: int | None) -> list[JSON]:
        params = {} if limit is None else {"limit": str(limit)}
        answer: list[JSON] = await self.remote.get("/api/routing/history", params)
        return answer

    async def diff(self, a: str, b: str, *, impact: bool, days: int) -> Diff:
        if impact or not (a.isdigit() and b.isdigit()):
            raise Refused("through --url, diff compares two stored versions, without --impact")
        changes = await self.remote.get("/api/routing/diff", {"from": a, "to": b})
        return Diff(changes, None)

    async def apply(self, document: RoutingDocument, *, reason: str, actor: str) -> JSON:
        _, headers = await self.remote.request("GET", "/api/routing")
        answer, _ = await self.remote.request(
            "PUT",
            "/api/routing",
            json=document_data(document),
            params={"reason": reason},
            headers={"If-Match": headers.get("ETag", "")},
        )
        result: JSON = answer
        return result

    async def revert(self, version: int, *, reason: str, actor: str) -> JSON:
        answer: JSON = await self.remote.post(
            "/api/routing/revert", {"version": version, "reason": reason}
        )
        return answer

    def _cutover_body(self, change: Cutover) -> JSON:
        return {
            "channel": "all" if change.channel is None else change.channel.value,
            "category": "all" if change.category is None else change.category.value,
            "percent": change.percent,
            "reason": change.reason,
        }

    async def cutover(self, change: Cutover) -> JSON:
        answer: JSON = await self.remote.post("/api/cutover", self._cutover_body(change))
        return answer

    async def cutover_preview(self, change: Cutover, *, days: int) -> JSON:
        body = {**self._cutover_body(change), "dry_run": True, "days": days}
        answer: JSON = await self.remote.post("/api/cutover", body)
        return answer

    async def rollback(self, change: Rollback) -> JSON:
        body: JSON = {"reason": change.reason}
        if change.channel is not None:
            body["channel"] = change.channel.value
        if change.duration_text is not None:
            body["for"] = change.duration_text
        answer: JSON = await self.remote.post("/api/rollback", body)
        return answer

    async def resume(self, *, reason: str, actor: str) -> JSON:
        answer: JSON = await self.remote.post("/api/resume", {"reason": reason})
        return answer

    async def schedule_plan(self, steps: Sequence[PlanStep], *, actor: str) -> list[JSON]:
        body = [
            {
                "at": step.at.isoformat(),
                "reason": step.reason,
                "cutover": {
                    channel.value: {category.value: share for category, share in shares.items()}
                    for channel, shares in step.cutover.items()
                },
            }
            for step in steps
        ]
        answer: list[JSON] = (await self.remote.post("/api/plan", body))["scheduled"]
        return answer

    async def plan_steps(self, *, include_done: bool) -> list[JSON]:
        if include_done:
            raise Refused("through --url, plan show lists pending steps only")
        answer: list[JSON] = await self.remote.get("/api/plan")
        return answer

    async def cancel_plan(self, step: int | None) -> int:
        if step is not None:
            raise Refused("through --url, plan cancel drops every pending step")
        answer, _ = await self.remote.request("DELETE", "/api/plan")
        return int(answer["cancelled"])

    async def classify(self, text: str, language: str | None) -> Classified:
        body: JSON = {"text": text}
        if language is not None:
            body["lang"] = language
        return Classified(await self.remote.post("/api/classify", body), None)

    async def classifier(self) -> tuple[Classifier, float, str]:
        raise Refused("--eval works locally: drop --url")

    async def outbox(self, *, only_failed: bool) -> list[JSON]:
        raise _database_only("outbox")

    async def retry_forward(self, row_id: int) -> bool:
        raise _database_only("outbox retry")

    async def create_token(self, name: str, role: str) -> str:
        raise _database_only("token create")

    async def tokens(self) -> list[JSON]:
        raise _database_only("token list")

    async def revoke_token(self, name: str) -> bool:
        raise _database_only("token revoke")

    async def upgrade(self) -> str:
        raise _database_only("db upgrade")


@asynccontextmanager
async def remote_backend(url: str, token: str) -> AsyncIterator[RemoteBackend]:
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
        yield RemoteBackend(Remote(url, token, session))
