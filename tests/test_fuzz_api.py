"""The operators' API fuzzed from its own description: Schemathesis reads
``/api/openapi.json`` from a real ``switchboard serve`` on loopback and sends, with an
admin token, requests generated from every operation's schema. Every answer must pass
its checks: no 5xx, and status, content type, headers and body as the document says.

Not checked: that every schema-valid request is accepted (see the test). A handful of
examples per operation in ``make test``; ``make soak`` many more (tests/fuzzing.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from schemathesis import Case
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from router.web.api import OPENAPI, ROUTES

from .fuzzing import examples
from .test_serve import Service, serving


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """The service and an admin token made with the CLI on its database."""
    tmp_path = tmp_path_factory.mktemp("fuzz-api")
    with serving(tmp_path) as service:
        command = str(Path(sys.executable).with_name("switchboard"))
        made = subprocess.run(
            [command, "token", "create", "--name", "fuzzer", "--role", "admin", "--format", "json"],
            env=service.env,
            capture_output=True,
            check=True,
            timeout=60,
        )
        yield service, json.loads(made.stdout)["token"]


@pytest.fixture(scope="module")
def api_schema(served: tuple[Service, str]) -> BaseSchema:
    service, _ = served
    return schemathesis.openapi.from_url(f"{service.base}/api/openapi.json")


OPERATIONS = [f"{op.method} {op.path}" for op, _ in ROUTES] + [f"{OPENAPI.method} {OPENAPI.path}"]


@pytest.mark.parametrize("label", OPERATIONS)
def test_every_api_answer_matches_the_published_document(
    label: str, api_schema: BaseSchema, served: tuple[Service, str]
) -> None:
    service, token = served
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in /api/openapi.json"

    @given(case=operation.as_strategy())
    @examples(6)
    def answered_as_documented(case: Case[Any]) -> None:
        case.call_and_validate(
            base_url=service.base,
            headers={"Authorization": f"Bearer {token}"},
            timeout=20,
            # A schema cannot say all a valid request is (a routing document's references,
            # a non-blank reason, a time in the past): a 422 for schema-valid data is the
            # validators' word, listed by path, not a defect. Every other check runs.
            excluded_checks=[positive_data_acceptance],
        )

    answered_as_documented()
