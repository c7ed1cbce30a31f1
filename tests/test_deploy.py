"""deploy/ stays in line with the code: the systemd units, the production env file and scripts/cluster.sh;
the dev set-up writes its secrets owner-only.

Units are parsed here (and by ``systemd-analyze verify`` when the machine has it); their commands
are checked against the project's virtualenv and Airflow's own argument parser; every setting the
Celery profile of ``scripts/cluster.sh`` sets is in the env example or listed below as trial-only;
the env example names only options Airflow and the library read, and holds no secret.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
UNITS = DEPLOY / "systemd"
ENV_EXAMPLE = DEPLOY / "digitize.env.example"
CLUSTER = REPO / "scripts" / "cluster.sh"

VENV = "/opt/digitize/venv"  # the documented install prefix (deploy/README.md)
APP = "/opt/digitize/app"
SECRETS_DIR = "/etc/digitize/secrets/"
READ_SECRET = "deploy/read-secret"  # what the env example's *_CMD options run
CONTROL = {
    "airflow-api-server.service": "api-server",
    "airflow-scheduler.service": "scheduler",
    "airflow-dag-processor.service": "dag-processor",
    "airflow-triggerer.service": "triggerer",
}
WORKER = "airflow-celery-worker@.service"
REUSE_API = "digitize-api.service"
HOST = "worker1.example.internal"  # what %H stands for when the commands are checked
Unit = dict[str, dict[str, list[str]]]
Units = dict[str, Unit]
Env = dict[str, str]

# Settings scripts/cluster.sh sets that a production installation does not take over, and why.
SINGLE_MACHINE_ONLY = {
    "AIRFLOW_API": "a line of cluster.sh's ready file for its clients, not a setting",
    "AIRFLOW_CONN_DIGITIZE_S3": "moto's throwaway keys inline; production: AWS_SHARED_CREDENTIALS_FILE",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER": "logs under CLUSTER_DIR; production keeps airflow.cfg's ${AIRFLOW_HOME}/logs",
    "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": "as above",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10 s so trials see DAG edits sooner; production keeps 30 s",
    "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "as above",
    "DIGITIZE_WORKER_NAME": "tells two workers on one host apart; production workers go by their host name",
}


def read_unit(path: Path) -> Unit:
    """A unit file as systemd reads it: sections, repeatable keys, backslash continuations."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("["):
            assert line.endswith("]"), f"{path.name}:{number}: {line}"
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"{path.name}:{number}: not a key=value line in a section"
        current.setdefault(key.strip(), []).append(value.strip())
    assert not pending, f"{path.name}: ends with a continuation"
    return sections


def read_env(path: Path) -> dict[str, str]:
    """An EnvironmentFile: every line a comment or NAME=value (systemd silently skips anything else)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
        assert match, f"{path.name}:{number}: not NAME=value: {line!r}"
        name, value = match.groups()
        assert name not in values, f"{path.name}:{number}: {name} set twice"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def exec_argv(unit: Unit, env: Env, instance: str) -> list[str]:
    """ExecStart as the process would get it: specifiers and ${VAR} from the env file filled in."""
    (line,) = unit["Service"]["ExecStart"]
    line = line.replace("%I", instance).replace("%H", HOST)
    assert "%" not in line, f"specifier not checked here: {line}"
    for name in re.findall(r"\$\{(\w+)\}", line):
        assert name in env, f"ExecStart uses ${{{name}}}, which the env example does not set"
    line = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], line)
    assert "$" not in line, f"unbraced variable (systemd splits it on spaces): {line}"
    return shlex.split(line)


def seconds(span: str) -> int:
    """A systemd time span such as ``30min``, ``2min 30s`` or ``90``."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hr": 3600}
    parts = re.findall(r"(\d+)\s*([a-z]*)", span)
    assert parts and all(u in units for _, u in parts), span
    return sum(int(n) * units[u] for n, u in parts)


def secret_looking(value: str) -> bool:
    """A password in a URL, or a run of token characters long or mixed enough to be a generated secret."""
    if re.search(r"://[^/@\s:]*:[^/@\s]+@", value):
        return True
    for run in re.findall(r"[A-Za-z0-9+=_-]{16,}", value):
        mixed = re.search(r"[a-z]", run) and re.search(r"[A-Z]", run) and re.search(r"\d", run)
        if len(run) >= 32 or mixed:
            return True
    return False


@pytest.fixture(scope="module")
def env() -> Env:
    return read_env(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def units() -> Units:
    return {path.name: read_unit(path) for path in sorted(UNITS.glob("*.service"))}


@pytest.fixture(scope="module")
def signing_instance(env: Env) -> str:
    """The signing worker's instance name: Airflow's default queue plus DIGITIZE_SIGNING_QUEUE."""
    return f"default,{env['DIGITIZE_SIGNING_QUEUE']}"


@pytest.fixture(scope="module")
def airflow_view(units: Units, env: Env, signing_instance: str) -> dict[str, Any]:
    """One Airflow process: parse every unit's command with Airflow's CLI parser, check the options."""
    argvs = {name: exec_argv(unit, env, signing_instance) for name, unit in units.items()}
    commands = {name: argv[1:] for name, argv in argvs.items() if argv[0].endswith("/airflow")}
    options = sorted({n.removesuffix("_CMD") for n in env if n.startswith("AIRFLOW__")})
    script = r"""
import argparse, contextlib, io, json, sys
from airflow.cli.cli_parser import get_parser
from airflow.configuration import conf
request = json.load(sys.stdin)
parser, errors = get_parser(), {}
todo = [parser]
while todo:  # an abbreviated option (--queue for --queues) must count as a typo here
    todo[-1].allow_abbrev = False
    todo += [c for a in todo.pop()._actions if isinstance(a, argparse._SubParsersAction) for c in a.choices.values()]
for name, argv in request["commands"].items():
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parser.parse_args(argv)
    except SystemExit as exc:
        errors[name] = stderr.getvalue().strip() or f"exit status {exc.code}"
described = conf.configuration_description
options = {n: tuple(n.lower().split("__")[1:]) for n in request["options"]}
print(json.dumps({
    "errors": errors,
    "unknown": [n for n, (s, k) in options.items() if k not in described.get(s, {}).get("options", {})],
    "sensitive": [n for n, o in options.items() if o in conf.sensitive_config_values],
    "default_queue": conf.get("operators", "default_queue"),
}))
"""
    child_env = {**os.environ, "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}
    request = json.dumps({"commands": commands, "options": options})
    result = subprocess.run([sys.executable, "-c", script], input=request, capture_output=True, text=True,
                            env=child_env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    view: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    view["commands"] = commands
    return view


def test_the_expected_units_and_their_shared_service_settings(units: Units, env: Env) -> None:
    assert set(units) == {*CONTROL, WORKER, REUSE_API}
    writable = {env["AIRFLOW_HOME"], env["DIGITIZE_WORK_DIR"]}
    for name, unit in units.items():
        service = unit["Service"]
        assert unit["Unit"]["Description"], name
        for key, value in {"User": "airflow", "EnvironmentFile": "/etc/digitize/digitize.env",
                           "Restart": "on-failure", "KillMode": "mixed", "NoNewPrivileges": "yes",
                           "PrivateTmp": "yes", "ProtectSystem": "full"}.items():
            assert service.get(key) == [value], f"{name}: {key}={service.get(key)}"
        rw = " ".join(service["ReadWritePaths"]).split()
        for path in {*writable, service["WorkingDirectory"][0]}:
            assert any(Path(path).is_relative_to(p) for p in rw), f"{name}: {path} is not under ReadWritePaths={rw}"
        assert "network-online.target" in " ".join(unit["Unit"]["After"]).split(), name
        assert "network-online.target" in " ".join(unit["Unit"]["Wants"]).split(), name
        assert unit["Install"]["WantedBy"] == ["multi-user.target"], name
    for name in CONTROL:  # where PostgreSQL and Redis may be local, they start first
        assert {"postgresql.service", "redis-server.service"} <= set(" ".join(units[name]["Unit"]["After"]).split())


def test_the_worker_stops_warmly_within_the_brokers_visibility_timeout(units: Units, env: Env) -> None:
    """Long enough for running chunks to finish, short enough that Redis does not hand them out meanwhile."""
    stop = seconds(units[WORKER]["Service"]["TimeoutStopSec"][0])
    assert 15 * 60 <= stop < int(env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"])
    for name in (*CONTROL, REUSE_API):
        assert seconds(units[name]["Service"]["TimeoutStopSec"][0]) <= 5 * 60, name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path, signing_instance: str) -> None:
    """systemd's own parser, with the venv prefix pointed at this checkout's so it can check the commands."""
    for path in UNITS.glob("*.service"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8").replace(VENV, str(REPO / ".venv")))
    escaped = subprocess.run(["systemd-escape", signing_instance], capture_output=True, text=True,
                             check=True).stdout.strip()
    instance = tmp_path / WORKER.replace("@.", f"@{escaped}.")
    instance.write_text((tmp_path / WORKER).read_text())
    paths = sorted(str(p) for p in tmp_path.glob("*.service"))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *paths], capture_output=True, text=True,
                            timeout=120)
    ours = [line for line in (result.stdout + result.stderr).splitlines()
            if any(Path(p).name.split("@")[0] in line for p in paths)]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


def test_every_command_is_an_entry_point_of_the_venv_with_a_real_subcommand(
        units: Units, env: Env, signing_instance: str, airflow_view: dict[str, Any]) -> None:
    from digitize.presentation.cli import build_parser, cmd_api_serve

    for name, unit in units.items():
        argv = exec_argv(unit, env, signing_instance)
        assert argv[0].startswith(f"{VENV}/bin/"), f"{name}: {argv[0]} is not in the documented venv"
        local = REPO / ".venv" / "bin" / Path(argv[0]).name
        assert local.is_file() and os.access(local, os.X_OK), f"{name}: no {local.name} in the project's venv"
    assert airflow_view["errors"] == {}
    assert {name: airflow_view["commands"][name][0] for name in CONTROL} == CONTROL
    argv = exec_argv(units[REUSE_API], env, signing_instance)
    assert argv[1:4] == ["-m", "digitize", "api"]
    assert build_parser().parse_args(argv[3:]).func is cmd_api_serve


def test_the_units_start_what_cluster_sh_starts(units: Units, env: Env, signing_instance: str) -> None:
    """The control processes and the worker's options of the Celery profile, as cluster.sh runs them."""
    script = CLUSTER.read_text(encoding="utf-8")
    started = set(re.findall(r'^start [\w-]+ "\$AIRFLOW" ([\w-]+)', script, flags=re.M))
    assert started == set(CONTROL.values())
    cluster_worker = script[script.index('"$AIRFLOW" celery worker'):]
    cluster_worker = cluster_worker[:cluster_worker.index("\ndone")]
    unit_worker = exec_argv(units[WORKER], env, signing_instance)
    assert unit_worker[1:3] == ["celery", "worker"]
    assert set(re.findall(r"--[\w-]+", cluster_worker)) <= {a for a in unit_worker if a.startswith("--")}


def test_every_setting_of_the_celery_profile_is_in_the_env_example(env: Env) -> None:
    exported = set(re.findall(r"\b(?:AIRFLOW|DIGITIZE)_[A-Z0-9_]*[A-Z0-9]\b", CLUSTER.read_text(encoding="utf-8")))
    missing = sorted(n for n in exported - SINGLE_MACHINE_ONLY.keys()
                     if not {n, f"{n}_CMD", f"{n}_FILE"} & env.keys())
    assert missing == [], "set by scripts/cluster.sh, absent from deploy/digitize.env.example"
    assert set(SINGLE_MACHINE_ONLY) <= exported, "SINGLE_MACHINE_ONLY lists what cluster.sh no longer sets"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "prompt_celery.CeleryExecutor"
    assert env["OMP_THREAD_LIMIT"] == "1", "the pool arithmetic assumes one Tesseract thread per process"


def test_the_env_example_names_only_what_airflow_and_the_library_read(env: Env, airflow_view: dict[str, Any]) -> None:
    assert airflow_view["unknown"] == [], "no such Airflow option"
    commands = sorted(n.removesuffix("_CMD") for n in env if n.startswith("AIRFLOW__") and n.endswith("_CMD"))
    assert set(commands) <= set(airflow_view["sensitive"]), "Airflow ignores _CMD on options that are not sensitive"
    source = "".join(p.read_text(encoding="utf-8")
                     for d in ("digitize", "dags", "plugins") for p in (REPO / d).rglob("*.py"))
    for name in (n for n in env if n.startswith("DIGITIZE_")):
        read = name.removesuffix("_FILE")
        assert f'"{read}"' in source, f"{name}: nothing in digitize/, dags/ or plugins/ reads it"
        if name.endswith("_FILE"):
            assert f'_secret("{read}")' in source, f"{name}: {read} is not read through config._secret"
    for name in ("AIRFLOW_CONFIG", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER"):
        assert env[name].startswith(f"{APP}/") and (REPO / env[name].removeprefix(f"{APP}/")).exists(), name


def test_the_env_example_holds_no_secret(env: Env) -> None:
    for name, value in env.items():
        assert not secret_looking(value), f"{name} looks like it holds a secret"
        if re.search(r"SECRET|PASSWORD|PASSPHRASE|TOKEN|FERNET|_KEY\b|CREDENTIAL|PGPASS|P12|PKCS12", name):
            if name.endswith("_CMD"):
                command = f"{APP}/{READ_SECRET} "
                assert value.startswith(command + SECRETS_DIR) and " " not in value.removeprefix(command), name
            else:
                assert value.startswith(SECRETS_DIR), f"{name}: a secret only as a file under {SECRETS_DIR}"
    assert "DIGITIZE_SIGNING_PASSPHRASE" not in env and "DIGITIZE_SIGNING_PASSPHRASE_FILE" in env


def test_the_secret_check_catches_generated_secrets() -> None:
    assert secret_looking(secrets.token_urlsafe(32))
    assert secret_looking(secrets.token_hex(16))
    assert secret_looking("redis://:hunter2@redis.example.internal:6379/0")
    assert not secret_looking("postgresql+psycopg_async://airflow@db.example.internal:5432/airflow")
    assert not secret_looking(f"{APP}/{READ_SECRET} {SECRETS_DIR}celery_result_backend")


def test_read_secret_prints_the_file_without_its_line_end(tmp_path: Path) -> None:
    """Airflow keeps a _CMD's output as is: an editor's final newline must not become part of the key."""
    (tmp_path / "jwt_secret").write_bytes(b"shared-by-every-machine\r\n")
    result = subprocess.run([REPO / READ_SECRET, tmp_path / "jwt_secret"], capture_output=True, check=True)
    assert result.stdout == b"shared-by-every-machine"


def test_worker_queues_and_concurrency_are_wired_as_the_readme_says(
        units: Units, env: Env, airflow_view: dict[str, Any]) -> None:
    """Instance name = queues (default, plus the signing queue on the key holder); concurrency from the env file."""
    (line,) = units[WORKER]["Service"]["ExecStart"]
    args = line.split()
    assert args[args.index("--queues") + 1] == "%I"
    assert args[args.index("--concurrency") + 1] == "${AIRFLOW__CELERY__WORKER_CONCURRENCY}"
    assert args[args.index("--celery-hostname") + 1] == "%H"
    assert int(env["AIRFLOW__CELERY__WORKER_CONCURRENCY"]) >= 1 and int(env["DIGITIZE_OCR_JOBS"]) >= 1
    assert airflow_view["default_queue"] == "default"
    # Both DAGs build their chunk tasks with the shared factory, which reads the signing queue in one place.
    shared = (REPO / "plugins" / "digitize_airflow.py").read_text(encoding="utf-8")
    assert shared.count('os.environ.get("DIGITIZE_SIGNING_QUEUE")') == 1
    for dag_file in ("digitize_inbox.py", "digitize_backlog.py"):
        assert "chunk_tasks(" in (REPO / "dags" / dag_file).read_text(encoding="utf-8"), dag_file
    guide = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert "airflow-celery-worker@default.service" in guide
    assert f"systemd-escape default,{env['DIGITIZE_SIGNING_QUEUE']}" in guide
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "cores ÷ DIGITIZE_OCR_JOBS" in readme
    assert "--queues default" in readme and "deploy/systemd/" in readme


# ------------------------------------------------------------------------------------------ generated secrets

PRIVATE = 0o600
PRIVATE_SH = REPO / "scripts" / "private.sh"


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_dev_set_up_writes_its_secrets_owner_only(tmp_path: Path) -> None:
    """scripts/setup.sh, run in a copy of the repository (with this checkout's virtualenv and packages, so only
    the generating steps run): every file it generates that holds a secret or personal data is 0600."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("scripts", "samples", "schemas"):
        shutil.copytree(REPO / name, copy / name)
    for name in ("airflow.cfg", "requirements.txt"):
        shutil.copy2(REPO / name, copy / name)
    (copy / ".venv").symlink_to((REPO / ".venv").resolve())
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8", "PYTHONPATH": str(REPO)}
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=copy, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    secrets_held = {
        ".env": "Airflow's JWT secret and API key, the PKCS#12 passphrase",
        "var/pki/agency.p12": "the agency's signing key",
        "airflow.db": "the digitize_s3 connection, its password in clear",
        "var/catalog.db": "citizen IDs, API token hashes",
    }
    assert b"testing" in (copy / "airflow.db").read_bytes()  # the S3 password is in there
    modes = {name: oct(_mode(copy / name)) for name in secrets_held}
    assert modes == {name: oct(PRIVATE) for name in secrets_held}
    assert _mode(copy / "var") == 0o700 and _mode(copy / "var" / "pki") == 0o700


def test_airflows_generated_password_is_owner_only_under_the_scripts(tmp_path: Path) -> None:
    """airflow.sh and cluster.sh start Airflow, which writes simple_auth_manager_passwords.json.generated: under
    private.sh's umask it is born 0600, and one left 0644 by an older run is made private."""
    for script in ("setup.sh", "airflow.sh", "cluster.sh"):
        lines = (REPO / "scripts" / script).read_text().splitlines()
        sourced = lines.index(". scripts/private.sh") if ". scripts/private.sh" in lines else next(
            (n for n, line in enumerate(lines) if line.startswith(". scripts/private.sh ")), None)
        assert sourced is not None, f"{script} does not source scripts/private.sh"
        first_write = next(n for n, line in enumerate(lines) if not line.lstrip().startswith("#") and re.search(
            r"setsid|airflow\b.*(migrate|connections|standalone)|\.env|pki init", line))
        assert sourced < first_write, f"{script} writes before it sources private.sh: {lines[first_write]}"
    passwords = tmp_path / "simple_auth_manager_passwords.json.generated"
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
           "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager."
                                          "SimpleAuthManager"}
    generate = ("from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager; "
                "SimpleAuthManager().init()")
    script = f'. "{PRIVATE_SH}"; private_files "$1"; exec "$2" -c "$3"'
    for existing in (False, True):
        passwords.unlink(missing_ok=True)
        if existing:
            passwords.write_text('{"admin": "an-older-password"}')
            passwords.chmod(0o644)
        done = subprocess.run(["bash", "-c", script, "private", str(passwords), sys.executable, generate],
                              env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "admin" in json.loads(passwords.read_text())
        assert _mode(passwords) == PRIVATE, f"existing={existing}: {oct(_mode(passwords))}"
