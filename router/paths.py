"""Where Switchboard keeps its data when nothing says otherwise (``var/``).

``SWITCHBOARD_VAR_DIR``, else the ``var/`` directory of the source checkout the code runs
from, else ``~/.local/state/switchboard``. It never depends on the working directory, so an
on-call person running ``switchboard rollback`` from anywhere acts on the same database as
the service. Standard library only: the lean rollback (router/cli/lean.py) reads it before
anything heavy is imported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent

#: Where var/ is; the container image sets it, since an installed package has no checkout.
VAR_DIR_VARIABLE = "SWITCHBOARD_VAR_DIR"


def default_var_dir(environ: Mapping[str, str]) -> Path:
    if environ.get(VAR_DIR_VARIABLE):
        return Path(environ[VAR_DIR_VARIABLE]).expanduser().resolve()
    if (_SOURCE_ROOT / "pyproject.toml").is_file() and os.access(_SOURCE_ROOT, os.W_OK):
        return _SOURCE_ROOT / "var"
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "switchboard"


def default_database_url(var_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{var_dir / 'switchboard.db'}"
