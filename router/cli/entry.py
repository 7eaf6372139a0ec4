"""The ``switchboard`` console script: the lean rollback when it applies, else the full CLI.

Kept tiny on purpose: everything it imports before deciding is paid by every command, and
by the on-call person's rollback first (router/cli/lean.py).
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    from router.cli import lean

    code = lean.run(sys.argv[1:], os.environ)
    if code is None:
        from router.cli.commands import main as full

        full()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # as the full CLI does: no module teardown after the work is done and flushed
    os._exit(code)
