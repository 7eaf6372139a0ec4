"""The deployment files (deploy/) checked against the code (issues #17 item 5 and #18).

Every variable they set is one the service reads (router/settings.py SERVICE_VARIABLES);
every probe answers while the database is down, as the voice webhooks do; the image's
entrypoint and every command the manifests run exist in the CLI; Compose starts the
database, the migration and the service in that order; and everything the service writes
is on a mount the manifests make writable — checked on the files, and by a real
``switchboard serve`` run as the image's user with the code and its home read-only."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import click
import pytest
import yaml

from router.cli.commands import cli
from router.paths import VAR_DIR_VARIABLE
from router.service.routing import cache_path
from router.settings import SERVICE_VARIABLES, load_settings

from .conftest import make_settings
from .conftest_pg import ci_requires_postgres
from .test_serve import free_port, serve_process
from .test_voice import closed_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
#: Where Python itself puts temporary files (tempfile.gettempdir()) in the image.
TEMPORARY_FILES = PurePosixPath("/tmp")


# -- reading the files ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions, stage by stage, continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append(Instruction(keyword.upper(), arguments.strip()))
    return stages


def runtime_stage(keyword: str) -> list[str]:
    """The arguments of every *keyword* instruction of the image's last (runtime) stage."""
    return [i.arguments for i in dockerfile_stages()[-1] if i.keyword == keyword]


def image_env() -> dict[str, str]:
    pairs = [word.split("=", 1) for env in runtime_stage("ENV") for word in shlex.split(env)]
    return {name: value for name, value in pairs}


def image_exec_form(keyword: str) -> list[str]:
    (arguments,) = runtime_stage(keyword)
    form: list[str] = json.loads(arguments)
    return form


def image_user() -> tuple[int, int]:
    (user,) = runtime_stage("USER")
    uid, gid = user.split(":")
    return int(uid), int(gid)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    return loaded


def manifest(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / name).read_text("utf-8"))
    return loaded


def only_container(name: str) -> dict[str, Any]:
    (container,) = manifest(name)["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def names_in(path: Path, pattern: str) -> set[str]:
    """Variable names of a file, those in comments (optional settings shown) included."""
    return set(re.findall(pattern, path.read_text("utf-8"), re.MULTILINE))


def interpreter_variables() -> set[str]:
    """What the Python interpreter itself reads (the image sets some of them)."""
    listing = subprocess.run(
        [sys.executable, "--help-env"], capture_output=True, text=True, check=True
    ).stdout
    return set(re.findall(r"^(PYTHON\w+)", listing, re.MULTILINE))


def under(path: PurePosixPath, mounts: set[PurePosixPath]) -> bool:
    return any(path == mount or mount in path.parents for mount in mounts)


# -- environment variables ------------------------------------------------------------------


def test_every_variable_the_deployment_files_set_is_one_the_service_reads() -> None:
    compose_text = (DEPLOY / "compose.yaml").read_text("utf-8")
    deployment, job = only_container("deployment.yaml"), only_container("migrate-job.yaml")
    set_by = {
        # PATH and the interpreter's own variables are not Switchboard's
        "Dockerfile ENV": set(image_env()) - interpreter_variables() - {"PATH"},
        "compose.yaml environment": set(compose()["x-switchboard"]["environment"]),
        # env.example also feeds Compose's own ${...} (the PostgreSQL password)
        "env.example": names_in(DEPLOY / "env.example", r"^#?\s*([A-Z][A-Z0-9_]*)=")
        - set(re.findall(r"\$\{(\w+)", compose_text)),
        "k8s env": {entry["name"] for c in (deployment, job) for entry in c.get("env", [])},
        "k8s/configmap.yaml": set(manifest("configmap.yaml")["data"]),
        "k8s/examples/secret.yaml": names_in(
            K8S / "examples" / "secret.yaml", r"^\s*#?\s*([A-Z][A-Z0-9_]*):"
        ),
    }
    unknown = {where: sorted(names - SERVICE_VARIABLES) for where, names in set_by.items()}
    assert {where: names for where, names in unknown.items() if names} == {}
    # each file was read (an empty parse would pass the check above for nothing)
    assert all(set_by.values()), set_by
    # and the manifests read the ConfigMap and the Secret those files define
    for container in (deployment, job):
        sources = {next(iter(source.values()))["name"] for source in container["envFrom"]}
        assert sources == {
            manifest("configmap.yaml")["metadata"]["name"],
            yaml.safe_load((K8S / "examples" / "secret.yaml").read_text("utf-8"))["metadata"][
                "name"
            ],
        }


# -- probes ---------------------------------------------------------------------------------


def health_check_paths() -> dict[str, str]:
    container = only_container("deployment.yaml")
    probes = {kind: container[kind]["httpGet"]["path"] for kind in container if "Probe" in kind}
    (check,) = runtime_stage("HEALTHCHECK")
    (image_path,) = re.findall(r"127\.0\.0\.1:\{port\}(/[\w/-]*)", check)
    return {**probes, "image HEALTHCHECK": image_path}


async def test_every_probe_answers_while_the_database_is_down(
    tmp_path: Path, started_apps: Any
) -> None:
    """Kubernetes takes a replica that fails its readiness out of the Service: during an
    outage every replica would, and the calls that still get their safe <Dial> (SPEC §7)
    would reach none. Readiness, liveness and the image's check ask /healthz; /readyz,
    which does fail then, is what to alert on (deploy/README.md)."""
    unreachable = f"postgresql+asyncpg://switchboard:x@127.0.0.1:{closed_port()}/switchboard"
    client = await started_apps(
        make_settings(tmp_path, database_url=unreachable, db_timeout_seconds=1.0)
    )
    paths = health_check_paths()
    assert set(paths) == {"startupProbe", "readinessProbe", "livenessProbe", "image HEALTHCHECK"}

    answered = {kind: (await client.get(path)).status for kind, path in paths.items()}
    assert answered == dict.fromkeys(paths, 200)
    assert (await client.get("/readyz")).status == 503


def test_the_probes_ask_the_port_the_service_listens_on() -> None:
    container = only_container("deployment.yaml")
    (port,) = container["ports"]
    listens = {entry["name"]: entry["value"] for entry in container["env"]}["SWITCHBOARD_PORT"]
    assert port["containerPort"] == int(listens) == int(image_env()["SWITCHBOARD_PORT"])
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[kind]["httpGet"]["port"] == port["name"]


# -- commands -------------------------------------------------------------------------------


def command_of(argv: Sequence[str]) -> str:
    """The CLI command *argv* runs ("db upgrade"), its options parsed as the CLI would:
    an unknown command or option raises click's UsageError."""
    command: click.Command = cli
    words: list[str] = []
    rest = list(argv)
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        words.append(rest.pop(0))
        command = command.commands[words[-1]]
    assert not isinstance(command, click.Group), f"{argv} names a group, not a command"
    command.make_context(" ".join(["switchboard", *words]), rest)
    return " ".join(words)


def test_the_image_and_the_manifests_run_commands_the_cli_has() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    entrypoint = image_exec_form("ENTRYPOINT")
    assert entrypoint == ["switchboard"]
    assert pyproject["project"]["scripts"]["switchboard"] == "router.cli.entry:main"

    deployment, job = only_container("deployment.yaml"), only_container("migrate-job.yaml")
    # neither replaces the entrypoint; both pass arguments to it
    assert "command" not in deployment and "command" not in job
    assert command_of(image_exec_form("CMD")) == "serve"
    assert command_of(deployment["args"]) == "serve"
    assert command_of(job["args"]) == "db upgrade"
    assert command_of(compose()["services"]["migrate"]["command"]) == "db upgrade"
    assert deployment["image"] == job["image"]  # the migration matches the code it serves


def test_a_command_the_cli_lacks_is_refused() -> None:
    with pytest.raises(click.UsageError):
        command_of(["serve", "--no-such-option"])
    with pytest.raises(AssertionError):
        command_of(["db"])


def test_compose_starts_the_database_then_the_migration_then_the_service() -> None:
    services = compose()["services"]
    assert services["db"]["healthcheck"]["test"]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["switchboard"]["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert services["migrate"]["restart"] == "no"


# -- what the service writes, and where the manifests let it ----------------------------------


def written_paths() -> dict[str, PurePosixPath]:
    """Every place the service writes in the image: its var dir (last-known routing, and the
    SQLite file and generated secret when those are not set) and temporary files."""
    env = image_env()
    assert VAR_DIR_VARIABLE in env, "the image must say where var/ is"
    var_dir = PurePosixPath(load_settings(env).var_dir)
    return {"var dir": var_dir, "temporary files": TEMPORARY_FILES}


def test_everything_the_service_writes_is_on_a_writable_mount() -> None:
    written = written_paths()
    assert str(written["var dir"]) in image_exec_form("VOLUME")  # `docker run --read-only`

    switchboard = compose()["services"]["switchboard"]
    assert switchboard["read_only"] is True
    named = set(compose()["volumes"])
    volumes = [entry.split(":") for entry in switchboard["volumes"]]
    assert all(len(parts) == 2 and parts[0] in named for parts in volumes), volumes
    compose_writable = {PurePosixPath(p) for p in switchboard["tmpfs"]} | {
        PurePosixPath(parts[1]) for parts in volumes
    }

    container = only_container("deployment.yaml")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    k8s_writable = {
        PurePosixPath(mount["mountPath"])
        for mount in container["volumeMounts"]
        if not mount.get("readOnly", False)
    }
    for what, path in written.items():
        assert under(path, compose_writable), f"{what} ({path}) is read-only in compose.yaml"
        assert under(path, k8s_writable), f"{what} ({path}) is read-only in k8s/deployment.yaml"


@pytest.fixture
def image_root() -> Iterator[Path]:
    """A directory standing for the container's root, which the image's user can reach
    (pytest's own temporary directories are root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="switchboard-image-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def in_image(root: Path, path: PurePosixPath) -> Path:
    return root / path.relative_to("/")


def wait_for_ready_version(base: str, version: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    answer: Mapping[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                answer = json.loads(response.read())
        except OSError:
            answer = {}
        if answer.get("version") == version:
            return
        time.sleep(0.1)
    pytest.fail(f"/readyz did not report version {version}: {answer}")


def test_serve_as_the_image_s_user_writes_only_where_the_manifests_allow(
    image_root: Path,
) -> None:
    """The image's environment and user, the code and the user's home (the image's workdir)
    read-only, only the var dir writable (as the manifests mount it) besides /tmp: the
    service starts, follows a rollback and caches it, and nothing fails to be written."""
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")):
        reason = "needs root, unshare and setpriv to run serve as the image's user"
        if ci_requires_postgres():  # CI runs every test (as root, with util-linux)
            pytest.fail(f"CI is set: {reason}", pytrace=False)
        pytest.skip(reason)
    env_of_image = image_env()
    written = written_paths()
    uid, gid = image_user()
    (workdir,) = runtime_stage("WORKDIR")
    home = in_image(image_root, PurePosixPath(workdir))
    var_dir = in_image(image_root, written["var dir"])
    var_dir.mkdir(parents=True)
    os.chown(var_dir, uid, gid)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **env_of_image,
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(home),
        VAR_DIR_VARIABLE: str(var_dir),
        "SWITCHBOARD_HOST": "127.0.0.1",  # loopback only, not the image's 0.0.0.0
        "SWITCHBOARD_PORT": str(port),
        "SWITCHBOARD_PUBLIC_URL": base,
    }
    as_image_user = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
    read_only = [ROOT, home]
    mounts = [
        *(f"mount --bind {d} {d} && mount -o remount,bind,ro {d}" for d in map(str, read_only)),
        f"mount --bind {var_dir} {var_dir} && mount -o remount,bind,rw {var_dir}",
    ]
    script = " && ".join([*mounts, shlex.join(["exec", *as_image_user, "switchboard", "serve"])])
    command = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script]
    log_path = image_root / "serve.log"

    with serve_process(env, port, log_path, cwd=home, command=command):
        wait_for_ready_version(base, 1)  # the shipped document, stored on first start
        rollback = subprocess.run(
            [*as_image_user, "switchboard", "rollback", "--reason", "drill"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert rollback.returncode == 0, rollback.stderr
        wait_for_ready_version(base, 2)
        deadline = time.monotonic() + 5
        while json.loads(cache_path(var_dir).read_text("utf-8"))["version"] != 2:
            assert time.monotonic() < deadline, "last_routing.json still holds version 1"
            time.sleep(0.1)

    log = log_path.read_text("utf-8")
    assert "cache_not_written" not in log
    assert "Read-only file system" not in log and "Permission denied" not in log
    assert sorted(p.name for p in home.iterdir()) == ["var"]
    assert {"last_routing.json", "switchboard.db", "customer_key_secret"} <= {
        p.name for p in var_dir.iterdir()
    }
