"""Process-wide memory settings of ``switchboard serve``.

Every aiosqlite connection runs in a thread of its own, and glibc gives threads malloc
arenas of their own (up to eight per core), each keeping what was freed in it for itself.
Under sustained mixed load the service's resident memory crept up by about 1 MB a minute;
with two arenas the 10-minute soak's peak fell from 133 to 123 MB and its growth over the
second half from 10.3 to 6.1 MB (bench/RESULTS.md, issue #14 goal 5). The cap is set here,
before the first thread starts, unless the operator set ``MALLOC_ARENA_MAX`` themselves.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: glibc's mallopt() parameter for the arena cap (malloc.h)
_M_ARENA_MAX = -8
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at *arenas*; False where that is not ours to do (the
    environment already says, or the C library is not glibc)."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
