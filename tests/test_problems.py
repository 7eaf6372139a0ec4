"""pydantic's errors as problems named by path: the one wording of documents, plans, settings
and API bodies."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from router.core.migration import PlanInvalid, parse_plan
from router.core.problems import Problem, problems_of


def _finer(value: object) -> object:
    raise PydanticCustomError(
        "several",
        "{summary}",
        {"summary": "two", "problems": [("", "a"), ("[1]", "b"), ("x", "c")]},
    )


def _even(value: int) -> int:
    if value % 2:
        raise ValueError("Must be even")
    return value


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: Annotated[int, AfterValidator(_even)]


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[Rule]
    shares: dict[str, dict[int, Annotated[float, Field(le=100)]]] = Field(default_factory=dict)
    keys: dict[Annotated[str, Field(pattern="^[a-z]+$")], int] = Field(default_factory=dict)
    hours: Annotated[object, BeforeValidator(_finer)] = None


def problems(data: object, root: str = "(body)") -> list[Problem]:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate(data)
    return problems_of(caught.value, data, root=root)


def test_list_indexes_are_bracketed_and_mapping_keys_dotted_even_when_they_are_numbers() -> None:
    data = {"rules": [{"weight": 2}, {"weight": 3}], "shares": {"phone": {420: 150}}}
    assert problems(data) == [
        Problem("rules[1].weight", "must be even"),
        Problem("shares.phone.420", "must be at most 100, not 150"),
    ]


def test_missing_and_unknown_keys_read_as_an_operator_would_say_it() -> None:
    assert problems({"rules": [{}], "colour": "blue"}) == [
        Problem("rules[0].weight", "required"),
        Problem("colour", "unknown key"),
    ]


def test_a_bad_mapping_key_is_marked_as_such() -> None:
    [problem] = problems({"rules": [], "keys": {"Bad": 1}})
    assert problem.path == "keys.Bad"
    assert problem.message.startswith("invalid key: string should match")


def test_the_input_as_a_whole_is_named_by_the_root() -> None:
    assert problems([1, 2], root="(plan)") == [
        Problem("(plan)", "expected a mapping (a JSON object)")
    ]


def test_an_error_carrying_finer_problems_becomes_one_problem_each() -> None:
    assert problems({"rules": [], "hours": "x"}) == [
        Problem("hours", "a"),
        Problem("hours[1]", "b"),
        Problem("hours.x", "c"),
    ]


def test_a_plan_says_what_was_written_next_to_what_is_allowed() -> None:
    text = (
        "- at: 2026-12-01\n"
        "  reason: step 1\n"
        "  cutover: {fax: {admin: 10}, phone: {admin: 150, product: -1}}\n"
    )
    with pytest.raises(PlanInvalid) as caught:
        parse_plan(text)
    assert caught.value.problems == [
        Problem("[0].at", "give a time with its UTC offset (e.g. 2026-12-01T08:00:00+01:00)"),
        Problem("[0].cutover.fax", "invalid key: 'fax' is not one of 'phone', 'email' or 'chat'"),
        Problem("[0].cutover.phone.admin", "must be at most 100, not 150"),
        Problem("[0].cutover.phone.product", "must be at least 0, not -1"),
    ]


@pytest.mark.parametrize("text", ["[]", "{}", "step: 1", "''"])
def test_a_plan_that_is_not_a_list_of_steps_says_so(text: str) -> None:
    with pytest.raises(PlanInvalid) as caught:
        parse_plan(text)
    assert caught.value.problems == [Problem("(plan)", "expected a non-empty list of steps")]
