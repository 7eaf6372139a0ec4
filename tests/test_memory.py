"""``router/memory.py``: the malloc arena cap of ``switchboard serve``, in a fresh process
each time (the cap is process-wide)."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "from router.memory import limit_malloc_arenas; print(limit_malloc_arenas())"


def probe(**environment: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | environment
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_glibc_takes_the_cap() -> None:
    assert probe() == "True"


def test_an_operators_own_setting_is_left_alone() -> None:
    assert probe(MALLOC_ARENA_MAX="4") == "False"
