"""Every import is declared, and the lock files hold what pyproject.toml declares.

The team standard: dependencies are pinned in a lock file that `make run`, `make test`, CI
and the image install from, and every import is declared. pyproject.toml says which
versions the code works with; requirements/*.lock (made by `make lock`, see README) pin the
exact ones, with hashes. These tests are offline: they read the files and the installed
distributions' metadata, and resolve nothing.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "switchboard"
FIRST_PARTY = {"router", "integrations", "tests", "bench", "train"}

#: which dependency groups each source tree may import from
GROUPS_OF = {
    "router": ("runtime",),
    "integrations": ("runtime",),
    "train": ("runtime", "train"),
    "bench": ("runtime", "train", "dev"),
    "tests": ("runtime", "train", "dev"),
}

#: modules that no distribution provides, with the reason
NOT_INSTALLED = {
    "_typeshed": "typeshed's stub-only module, imported under TYPE_CHECKING for mypy",
}

#: declared distributions that no code imports, with the reason they are declared
NOT_IMPORTED = {
    "aiosqlite": "SQLAlchemy's driver for sqlite+aiosqlite:// URLs",
    "tzdata": "time-zone data for zoneinfo where the system has none (slim images)",
    "pytest-asyncio": "pytest plugin: asyncio_mode = auto in pyproject.toml",
    "ruff": "make lint",
    "mypy": "make lint",
    "types-pyyaml": "yaml's type stubs for mypy",
    "pip-audit": "make audit (requirements/audit.py runs it)",
}

LOCKS = {
    # lock file -> the dependency groups it must hold
    "runtime.lock": ("runtime",),
    "dev.lock": ("runtime", "train", "dev", "build"),
    "build.lock": ("build",),
}


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _expand(requirements: list[str], extras: dict[str, list[str]]) -> list[Requirement]:
    """Requirements, with the project's references to its own extras expanded."""
    out: list[Requirement] = []
    for text in requirements:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == PROJECT:
            for extra in requirement.extras:
                out.extend(_expand(extras[extra], extras))
        else:
            out.append(requirement)
    return out


@cache
def declared() -> dict[str, dict[str, Requirement]]:
    """Dependency group -> canonical distribution name -> its requirement."""
    data = pyproject()
    extras = data["project"]["optional-dependencies"]
    groups = {
        "runtime": _expand(data["project"]["dependencies"], extras),
        "train": _expand(extras["train"], extras),
        "dev": _expand(extras["dev"], extras),
        "build": _expand(data["build-system"]["requires"], extras),
    }
    return {
        group: {canonicalize_name(r.name): r for r in requirements}
        for group, requirements in groups.items()
    }


def _declared_in(groups: tuple[str, ...]) -> set[str]:
    return {name for group in groups for name in declared()[group]}


@cache
def distributions_of_module() -> dict[str, set[str]]:
    """Top-level module -> canonical names of the installed distributions providing it."""
    return {
        module: {canonicalize_name(d) for d in dists}
        for module, dists in importlib.metadata.packages_distributions().items()
    }


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """Top-level names of the absolute imports in one file, with their line numbers."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.partition(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0], node.lineno


@cache
def third_party_imports() -> dict[str, list[tuple[str, str]]]:
    """Source tree -> (module, "file:line") for each import of a third-party module."""
    found: dict[str, list[tuple[str, str]]] = {}
    for tree in GROUPS_OF:
        found[tree] = []
        for path in sorted((ROOT / tree).rglob("*.py")):
            for module, line in _imports(path):
                if module in sys.stdlib_module_names or module in FIRST_PARTY:
                    continue
                found[tree].append((module, f"{path.relative_to(ROOT)}:{line}"))
    return found


def test_the_import_audit_sees_the_code() -> None:
    """A guard for the tests below: they read real files and find real imports."""
    imports = third_party_imports()
    assert {"aiohttp", "sqlmodel", "structlog"} <= {m for m, _ in imports["router"]}
    assert {"pytest", "hypothesis"} <= {m for m, _ in imports["tests"]}
    assert {"numpy", "sklearn"} <= {m for m, _ in imports["train"]}


@pytest.mark.parametrize("tree", sorted(GROUPS_OF))
def test_every_import_is_declared(tree: str) -> None:
    """An import of a module that no declared dependency of this tree provides fails here:
    router/ and integrations/ may use only [project].dependencies, train/ also the `train`
    extra, tests/ and bench/ also `dev`."""
    allowed = _declared_in(GROUPS_OF[tree])
    problems = []
    for module, where in third_party_imports()[tree]:
        if module in NOT_INSTALLED:
            continue
        providers = distributions_of_module().get(module)
        if not providers:
            problems.append(f"{where}: {module} is provided by no installed distribution")
        elif not providers & allowed:
            problems.append(
                f"{where}: {module} comes from {sorted(providers)}, not declared for {tree}/ "
                f"(groups {GROUPS_OF[tree]})"
            )
    assert not problems, "\n".join(problems)


def test_every_declared_dependency_is_used() -> None:
    """A declared distribution that nothing imports is dead weight (and attack surface),
    unless NOT_IMPORTED says why it is there."""
    imported = {
        dist
        for tree in GROUPS_OF
        for module, _ in third_party_imports()[tree]
        for dist in distributions_of_module().get(module, ())
    }
    runtime_train_dev = _declared_in(("runtime", "train", "dev"))
    unused = runtime_train_dev - imported - set(NOT_IMPORTED)
    assert not unused, f"declared but never imported: {sorted(unused)}"
    stale = set(NOT_IMPORTED) - runtime_train_dev
    assert not stale, f"NOT_IMPORTED names undeclared distributions: {sorted(stale)}"


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: int
    direct: bool  # required by pyproject.toml itself, not only by another package


#: how pip-compile marks a pin that pyproject.toml asks for (not one that a package, or the
#: build backend when asked for an editable build's needs, brings in)
DIRECT = re.compile(rf"{PROJECT} \(pyproject\.toml(::build-system\.requires)?\)")


def read_lock(name: str) -> dict[str, Pin]:
    """One lock file as pip-compile writes it: `name==version \\` then `--hash=` lines,
    then `# via` comments."""
    pins: dict[str, Pin] = {}
    blocks = re.split(r"^(?=[A-Za-z0-9])", (ROOT / "requirements" / name).read_text(), flags=re.M)
    for block in blocks:
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", block)
        if match is None:
            assert block.startswith("#") or not block.strip(), f"{name}: cannot read {block!r}"
            continue
        pins[canonicalize_name(match[1])] = Pin(
            version=match[2],
            hashes=block.count("--hash=sha256:"),
            direct=DIRECT.search(block) is not None,
        )
    return pins


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_lock_holds_what_pyproject_declares(lock: str) -> None:
    """Each dependency declared in pyproject.toml is pinned in the locks that install it, at
    a version its range allows; run `make lock` after changing pyproject.toml."""
    pins = read_lock(lock)
    problems = []
    for group in LOCKS[lock]:
        for name, requirement in declared()[group].items():
            if name not in pins:
                problems.append(f"{requirement} ({group}) is not in requirements/{lock}")
            elif not requirement.specifier.contains(pins[name].version, prereleases=True):
                problems.append(f"{requirement} ({group}): {lock} pins {pins[name].version}")
    should_be_direct = _declared_in(LOCKS[lock])
    problems += [
        f"{lock} pins {name} for pyproject.toml, which no longer declares it"
        for name, pin in pins.items()
        if pin.direct and name not in should_be_direct
    ]
    assert not problems, "\n".join([*problems, "-> run `make lock`"])


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_pin_has_hashes(lock: str) -> None:
    """pip's --require-hashes refuses a lock with any pin lacking a hash."""
    pins = read_lock(lock)
    assert pins
    assert not [name for name, pin in pins.items() if pin.hashes == 0]


@pytest.mark.parametrize("lock", ["runtime.lock", "build.lock"])
def test_image_locks_agree_with_the_tested_one(lock: str) -> None:
    """The image installs runtime.lock and builds with build.lock; the tests run on dev.lock.
    The same package at the same version in each, so what ships is what was tested."""
    dev = read_lock("dev.lock")
    differ = {
        name: (pin.version, dev[name].version if name in dev else None)
        for name, pin in read_lock(lock).items()
        if name not in dev or dev[name].version != pin.version
    }
    assert not differ, f"{lock} vs dev.lock: {differ}"


def test_this_environment_is_the_lock() -> None:
    """`make test` runs in a venv installed from dev.lock; a venv that drifted (installed by
    hand, or from pyproject.toml's ranges) fails here rather than testing other versions."""
    drifted = {}
    for name, pin in read_lock("dev.lock").items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed is None or Version(installed) != Version(pin.version):
            drifted[name] = (installed, pin.version)
    assert not drifted, f"installed vs dev.lock: {drifted} -> rm -rf .venv && make test"
