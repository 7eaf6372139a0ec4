"""A throwaway PostgreSQL server for tests (no pytest in here; see tests/conftest_pg.py).

    with PostgresServer.start() as server:          # or: server = start_postgres(); server.stop()
        server.url                                   # postgresql+asyncpg://postgres@127.0.0.1:PORT/switchboard
        server.create_database("orders")             # URL of a fresh, empty database

It uses the PostgreSQL binaries installed on the machine: Debian's
``/usr/lib/postgresql/<version>/bin`` (the highest version wins), else ``pg_ctl``/``initdb`` on
``PATH``. When none are found, :class:`PostgresUnavailable` is raised; any other problem
(initdb or start-up failing) is a :class:`PostgresStartError`, which must never be mistaken
for "not installed".

The cluster lives in a fresh temporary directory, listens only on 127.0.0.1 on a free port
(its unix socket stays inside that directory), trusts every connection and runs with fsync
off. PostgreSQL refuses to run as root, so when the current uid is 0 the server binaries run
as the ``postgres`` system user (``runuser``, else ``setpriv``) and the directory is handed
to that user. :meth:`PostgresServer.stop` (``pg_ctl stop -m immediate``, then the directory
is deleted) is idempotent and is also registered with :mod:`atexit` as a safety net.

Replication, for the failover tests: :meth:`PostgresServer.start_standby` makes a streaming
standby of a running server (``pg_basebackup -R -X stream``, started on a port of its own,
returned once the primary sees it streaming), :meth:`PostgresServer.make_synchronous` has the
primary wait for that standby's flush before a commit returns (``make_asynchronous`` stops
that), and :meth:`PostgresServer.promote` turns a standby into a primary. The test
cluster's defaults (fsync and synchronous_commit off) can be replaced per server with
``start(settings={...})``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "PostgresServer",
    "PostgresStartError",
    "PostgresUnavailable",
    "find_pg_bindir",
    "start_postgres",
]

HOST = "127.0.0.1"
SUPERUSER = "postgres"
DEFAULT_DATABASE = "switchboard"
READY_TIMEOUT = 30  # seconds pg_ctl waits for the server to accept connections
STOP_TIMEOUT = 30
COMMAND_TIMEOUT = 60  # hard cap on any single subprocess
_START_ATTEMPTS = 3  # a free port can be taken between probing and binding
_MAX_IDENTIFIER = 63  # NAMEDATALEN - 1

_SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "unix_socket_permissions": "0700",
}


class PostgresUnavailable(RuntimeError):
    """PostgreSQL server binaries (initdb, pg_ctl, psql) or the postgres user are missing."""


class PostgresStartError(RuntimeError):
    """PostgreSQL is installed but the throwaway server could not be set up or started."""


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin -> (15,) or (9, 6)
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def find_pg_bindir() -> Path | None:
    """Directory holding ``initdb``, ``pg_ctl`` and ``psql``, or None when not installed."""
    debian = [
        initdb.parent
        for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb")
        if (initdb.parent / "pg_ctl").is_file()
    ]
    if debian:
        return max(debian, key=_version_key)
    on_path = shutil.which("pg_ctl")
    if on_path:
        bindir = Path(on_path).resolve().parent
        if (bindir / "initdb").is_file():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    # PGHOST, PGPORT, PGDATA, PGUSER ... from the caller's environment must not steer us.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    env["LC_ALL"] = "C"  # the cluster is initialised with --no-locale anyway
    return env


def _traversable_by_others(directory: Path) -> bool:
    return all(part.stat().st_mode & stat.S_IXOTH for part in (directory, *directory.parents))


class PostgresServer:
    """One throwaway PostgreSQL cluster. Use :meth:`start` (or :func:`start_postgres`)."""

    def __init__(
        self,
        bindir: Path,
        base_dir: Path,
        port: int,
        dbname: str,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.bindir = bindir
        #: the server's ``-c`` options: the defaults above, replaced where *settings* says
        self.settings = {**_SERVER_SETTINGS, **(settings or {})}
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir / "socket"
        self.log_file = base_dir / "postgres.log"
        self.port = port
        self.host = HOST
        self.user = SUPERUSER
        self.dbname = dbname
        self._run_as: list[str] = []
        self._owner: tuple[int, int] | None = None
        self._running = False
        self._stopped = False
        self._lock = threading.Lock()
        self._databases: set[str] = set()

    # -- public API -------------------------------------------------------------------

    @classmethod
    def start(
        cls, dbname: str = DEFAULT_DATABASE, settings: Mapping[str, str] | None = None
    ) -> PostgresServer:
        """initdb + start a server and create ``dbname``; raises PostgresUnavailable or
        PostgresStartError. The caller must call :meth:`stop` (or use ``with``). *settings*
        replace the tests' server settings (fsync and synchronous_commit off): a failover
        test turns synchronous_commit on, the benchmarks measure with fsync=on and so on."""
        bindir = find_pg_bindir()
        if bindir is None:
            raise PostgresUnavailable(
                "PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb and no "
                "pg_ctl on PATH (Debian/Ubuntu: apt-get install postgresql)"
            )
        for tool in ("initdb", "pg_ctl", "psql"):
            if not (bindir / tool).is_file():
                raise PostgresUnavailable(f"PostgreSQL is incomplete: {bindir / tool} is missing")
        run_as, owner = cls._privileges()
        base_dir = cls._make_base_dir(owner)
        server = cls(bindir, base_dir, port=0, dbname=_safe_identifier(dbname), settings=settings)
        server._run_as, server._owner = run_as, owner
        atexit.register(server.stop)
        try:
            server._initdb()
            server._start_server()
            server._create(server.dbname)
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def url(self) -> str:
        """SQLAlchemy async URL of the default database created at start."""
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create a fresh, empty database and return its SQLAlchemy async URL.

        ``name`` is turned into a safe identifier (lower case, ``[a-z0-9_]``, at most 63
        characters); if that name was already handed out, a numeric suffix makes it unique,
        so the database is always new. The actual name is the URL's last path segment.
        """
        with self._lock:
            base = _safe_identifier(name)
            candidate, counter = base, 1
            while candidate in self._databases:
                counter += 1
                suffix = f"_{counter}"
                candidate = base[: _MAX_IDENTIFIER - len(suffix)] + suffix
            self._create(candidate)
            return self.url_for(candidate)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connections still open to it."""
        self.psql(f'DROP DATABASE IF EXISTS "{_safe_identifier(name)}" WITH (FORCE)')

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL through psql (as the superuser, over TCP) and return its plain output."""
        self._require_running()
        connection = ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", dbname]
        psql = [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        result = self._run([*psql, *connection, "-c", sql], as_postgres=False)
        return result.stdout

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete its directory. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            self._pg_ctl_stop()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            with contextlib.suppress(Exception):
                atexit.unregister(self.stop)

    # -- outages, for the tests of what the service does while the database is away ----

    def halt(self, mode: str = "fast") -> None:
        """Stop the server as an operator would (``pg_ctl stop -m fast``: every connection
        is closed; ``immediate``: as a crash, without a shutdown checkpoint), keeping its data
        and port for :meth:`restart`."""
        self._require_running()
        pg_ctl = [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data_dir)]
        self._run([*pg_ctl, "-m", mode, "-w", "-t", str(STOP_TIMEOUT)])
        self._running = False

    def restart(self) -> None:
        """Start a :meth:`halt`-ed server again, on the same port with the same data."""
        if self._running or self._stopped:
            raise PostgresStartError(f"{self!r} is not halted")
        pg_ctl = [str(self.bindir / "pg_ctl"), "start", "-D", str(self.data_dir)]
        self._run(
            [
                *pg_ctl,
                *("-l", str(self.log_file), "-o", self._options()),
                *("-w", "-t", str(READY_TIMEOUT)),
            ]
        )
        self._running = True

    def processes(self) -> list[int]:
        """The postmaster and its children (backends, background workers): the processes to
        SIGSTOP for a server that hangs without closing anything (a network black hole)."""
        postmaster = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        children = []
        for stat_file in Path("/proc").glob("[0-9]*/stat"):
            try:
                # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")"
                fields = stat_file.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # it ended meanwhile
            if int(fields[1]) == postmaster:
                children.append(int(stat_file.parent.name))
        return [postmaster, *children]

    # -- replication, for the failover tests -----------------------------------------------

    def start_standby(self, name: str = "standby") -> PostgresServer:
        """A streaming standby of this server: ``pg_basebackup -R -X stream`` (the primary's
        data, standby.signal and primary_conninfo), started on a port of its own with
        ``cluster_name`` *name* (its application_name on the primary), returned once the
        primary reports it ``streaming``. initdb's pg_hba.conf already trusts replication
        from 127.0.0.1, and wal_level=replica and max_wal_senders=10 are the defaults."""
        self._require_running()
        if not (self.bindir / "pg_basebackup").is_file():
            raise PostgresUnavailable(f"{self.bindir / 'pg_basebackup'} is missing")
        base_dir = self._make_base_dir(self._owner)
        standby = type(self)(
            self.bindir,
            base_dir,
            port=0,
            dbname=self.dbname,
            settings={**self.settings, "cluster_name": _safe_identifier(name)},
        )
        standby._run_as, standby._owner = self._run_as, self._owner
        standby._databases = set(self._databases)
        atexit.register(standby.stop)
        try:
            connection = ["-h", self.host, "-p", str(self.port), "-U", self.user]
            backup = [str(self.bindir / "pg_basebackup"), "-D", str(standby.data_dir)]
            # a fast checkpoint: the default "spread" one can take minutes to begin the copy
            standby._run([*backup, *connection, "-R", "-X", "stream", "-c", "fast", "--no-sync"])
            standby._start_server()
            self.wait_streaming(standby.application_name)
        except BaseException:
            standby.stop()
            raise
        return standby

    @property
    def application_name(self) -> str:
        """The name a standby streams under (its cluster_name), or "" for a primary."""
        return self.settings.get("cluster_name", "")

    def wait_streaming(self, application_name: str, timeout: float = READY_TIMEOUT) -> None:
        """Return once pg_stat_replication shows *application_name* streaming."""
        deadline = time.monotonic() + timeout
        query = (
            "SELECT state FROM pg_stat_replication "
            f"WHERE application_name = '{_safe_identifier(application_name)}'"
        )
        while self.psql(query).strip() != "streaming":
            if time.monotonic() > deadline:
                raise PostgresStartError(f"{application_name} not streaming within {timeout} s")
            time.sleep(0.05)

    def make_synchronous(self, standby: PostgresServer) -> None:
        """A commit here returns only once *standby* has flushed it (synchronous_commit=on,
        as this server must have been started with): ``ALTER SYSTEM`` + reload, so the
        setting lives in this server's postgresql.auto.conf only, never in a standby copied
        from it before (a promoted standby naming itself would wait for ever)."""
        if self.settings.get("synchronous_commit") != "on":
            raise PostgresStartError("start the primary with synchronous_commit=on")
        self._synchronous_standby(standby.application_name, "sync")

    def make_asynchronous(self, standby: PostgresServer) -> None:
        """Commits here stop waiting for *standby*, which streams on asynchronously."""
        self._synchronous_standby("", "async", standby.application_name)

    def _synchronous_standby(self, names: str, state: str, watched: str = "") -> None:
        self.psql(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'")
        self.psql("SELECT pg_reload_conf()")
        deadline = time.monotonic() + READY_TIMEOUT
        query = (
            "SELECT sync_state FROM pg_stat_replication "
            f"WHERE application_name = '{watched or names}'"
        )
        while self.psql(query).strip() != state:
            if time.monotonic() > deadline:
                raise PostgresStartError(f"{watched or names} did not become {state}")
            time.sleep(0.05)

    def promote(self) -> None:
        """Make this standby a primary (``pg_ctl promote -w``: returns once it takes
        writes). Fencing the old primary is the caller's part: halt it first."""
        self._require_running()
        pg_ctl = [str(self.bindir / "pg_ctl"), "promote", "-D", str(self.data_dir)]
        self._run([*pg_ctl, "-w", "-t", str(READY_TIMEOUT)])

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<PostgresServer {self.url} {state} in {self.base_dir}>"

    # -- internals --------------------------------------------------------------------

    @staticmethod
    def _privileges() -> tuple[list[str], tuple[int, int] | None]:
        """Command prefix that drops root to the postgres user, and that user's uid/gid."""
        if os.geteuid() != 0:
            return [], None
        try:
            entry = pwd.getpwnam(SUPERUSER)
        except KeyError:
            raise PostgresUnavailable(
                "running as root, and there is no 'postgres' system user to run the server as "
                "(PostgreSQL refuses to run as root; the Debian package creates that user)"
            ) from None
        runuser, setpriv = shutil.which("runuser"), shutil.which("setpriv")
        if runuser:
            prefix = [runuser, "-u", SUPERUSER, "--"]
        elif setpriv:
            ids = [f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups"]
            prefix = [setpriv, *ids, "--"]
        else:
            raise PostgresStartError("running as root, but neither runuser nor setpriv exists")
        return prefix, (entry.pw_uid, entry.pw_gid)

    @staticmethod
    def _make_base_dir(owner: tuple[int, int] | None) -> Path:
        parent = Path(tempfile.gettempdir())
        if owner is not None and not _traversable_by_others(parent):
            parent = Path("/tmp")  # the postgres user must be able to reach the directory
        base_dir = Path(tempfile.mkdtemp(prefix="switchboard-pg-", dir=parent))
        (base_dir / "socket").mkdir(mode=0o700)
        if owner is not None:
            for path in (base_dir, base_dir / "socket"):
                os.chown(path, *owner)
        return base_dir

    def _run(
        self, args: Sequence[str], *, as_postgres: bool = True, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [*(self._run_as if as_postgres else []), *args]
        try:
            result = subprocess.run(
                command,
                cwd=self.base_dir,  # the postgres user may not be able to enter our cwd
                env=_clean_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresStartError(
                f"{Path(args[0]).name} did not finish within {COMMAND_TIMEOUT} s"
            ) from exc
        if check and result.returncode != 0:
            raise PostgresStartError(
                f"{' '.join(command)} failed with exit code {result.returncode}:\n"
                f"{result.stdout}{result.stderr}{self._log_tail()}"
            )
        return result

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n--- postgres.log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    def _initdb(self) -> None:
        initdb = [str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", self.user]
        self._run([*initdb, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"])

    def _start_server(self) -> None:
        pg_ctl = [str(self.bindir / "pg_ctl"), "start", "-D", str(self.data_dir)]
        wait = ["-w", "-t", str(READY_TIMEOUT)]  # until it accepts connections
        last_error: PostgresStartError | None = None
        for _attempt in range(_START_ATTEMPTS):
            self.port = _free_port()
            try:
                self._run([*pg_ctl, "-l", str(self.log_file), "-o", self._options(), *wait])
            except PostgresStartError as exc:
                last_error = exc
                self._pg_ctl_stop()  # leave no half-started postmaster behind before retrying
                continue
            self._running = True
            return
        assert last_error is not None
        raise last_error

    def _options(self) -> str:
        return " ".join(
            [f"-p {self.port}", f"-k {self.socket_dir}"]
            + [f"-c {key}={value}" for key, value in self.settings.items()]
        )

    def _pg_ctl_stop(self) -> None:
        """``pg_ctl stop -m immediate``; SIGKILL the postmaster if it still runs after that."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            pid = None
        if pid is not None or self._running:
            pg_ctl = [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data_dir)]
            wait = ["-m", "immediate", "-w", "-t", str(STOP_TIMEOUT)]
            with contextlib.suppress(PostgresStartError):
                self._run([*pg_ctl, *wait], check=False)
        self._running = False
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, 0)  # still there?
                os.kill(pid, signal.SIGKILL)

    def _create(self, name: str) -> None:
        self.psql(f'CREATE DATABASE "{name}"')
        self._databases.add(name)

    def _require_running(self) -> None:
        if not self._running or self._stopped:
            raise PostgresStartError(f"{self!r} is not running")


def _safe_identifier(name: str) -> str:
    ident = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "db"
    if not (ident[0].isalpha() or ident[0] == "_"):
        ident = f"db_{ident}"
    return ident[:_MAX_IDENTIFIER]


def start_postgres(
    dbname: str = DEFAULT_DATABASE, settings: Mapping[str, str] | None = None
) -> PostgresServer:
    """Start a throwaway server; see :meth:`PostgresServer.start`."""
    return PostgresServer.start(dbname, settings)
