"""Where the files shipped with Switchboard live (routing example, classifier rules).

They are package data, found next to the installed code and never through the working
directory: in a wheel ``config/`` is installed as ``router/_shipped_config``; in a source
checkout (editable install) it is the repository's ``config/`` beside the package.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the router package


@cache
def config_dir() -> Path:
    for candidate in (_PACKAGE_DIR / "_shipped_config", _PACKAGE_DIR.parent / "config"):
        if (candidate / "routing.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        "the shipped config/ directory is missing from this installation "
        f"(looked in {_PACKAGE_DIR / '_shipped_config'} and {_PACKAGE_DIR.parent / 'config'})"
    )


def shipped_path(name: str) -> Path:
    """Path of a shipped file such as ``routing.yaml`` or ``classifier/cs.yaml``."""
    return config_dir() / name
