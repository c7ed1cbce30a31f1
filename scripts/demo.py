"""The demo behind ``make demo``: the sample batch through Airflow's ``digitize_inbox``, then the coverage table.

It works on the catalog and the archive the README's environment names (``.env``: ``var/catalog.db``
and the folder archive ``var/archive``), so what it archived stays there: afterwards ``show``,
``verify`` and ``search`` find the demo's documents, and ``make airflow`` shows them. It copies
``samples/batch`` into a new batch of ``var/demo/inbox`` (each run's copy stays, as an officer's
batches do), runs the DAG with ``airflow dags test`` (showing each task as it starts and what it prints;
Airflow's own log goes to ``var/demo/airflow.log``), says what the run added (a second demo
submits the same scans again: they are reported as duplicates of their codes), prints the coverage
table and the quarantine, and copies the archived documents into ``demo-output/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INBOX = ROOT / "var" / "demo" / "inbox"
OUT = ROOT / "demo-output"
PY = str(ROOT / ".venv" / "bin" / "python")
AIRFLOW_LOG = ROOT / "var" / "demo" / "airflow.log"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z? \[(\w+)\s*\] (.*)$")
"""A line of Airflow's own log (structlog's console format): level, then the message."""
TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")


def say(message: str) -> None:
    print(f"\033[1m==> {message}\033[0m", flush=True)


def run(args: list[str], env: dict[str, str], *, quiet: bool = False) -> str:
    result = subprocess.run(args, env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE if quiet else None,
                            stderr=subprocess.STDOUT if quiet else None)
    if result.returncode != 0:
        if quiet:
            print(result.stdout)
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(args[:4])} …")
    return result.stdout or ""


def shown(line: str) -> str | None:
    """What the demo shows of one line of ``airflow dags test``: each task as it starts, what the tasks print,
    and Airflow's errors; ``None`` for the rest of Airflow's own log (about 140 lines a run)."""
    found = LOG_LINE.match(line)
    if found is None:
        return line.rstrip("\n")  # a task's own output (progress, outcomes, summary) or a traceback's lines
    level, message = found.groups()
    if level in ("error", "critical"):
        return line.rstrip("\n")
    task = TASK_START.search(message)
    if task is None:
        return None
    return f"  task {task[1]}" + (f" #{task[2]}" if task[2] != "-1" else "")


def run_dag(args: list[str], env: dict[str, str]) -> None:
    """``airflow dags test`` as it runs, without Airflow's own log (kept whole in :data:`AIRFLOW_LOG`)."""
    AIRFLOW_LOG.parent.mkdir(parents=True, exist_ok=True)
    quiet = {**env, "PYTHONWARNINGS": "ignore"}  # Airflow's deprecation and graphviz notices
    with AIRFLOW_LOG.open("w", encoding="utf-8") as log, subprocess.Popen(
            args, env=quiet, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if (text := shown(line)) is not None:
                print(text, flush=True)
    if proc.returncode != 0:
        print("".join(AIRFLOW_LOG.read_text(encoding="utf-8").splitlines(keepends=True)[-40:]))
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(args[:4])} … (whole log: {AIRFLOW_LOG})")


def library(code: str, env: dict[str, str], *args: str) -> str:
    """Run a few lines of the library in the project's Python, with the same settings as the CLI."""
    return run([PY, "-c", code, *args], env, quiet=True)


def main() -> int:
    env = dict(os.environ)
    env["DIGITIZE_QUIET_SECONDS"] = "0"
    where = library(_WHERE, env).strip()
    say(f"catalog and archive of this machine (.env): {where}")
    batch = INBOX / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    shutil.copytree(ROOT / "samples" / "batch", batch)
    (batch / "_READY").touch()
    before = json.loads(library(_DOCUMENTS, env))
    say(f"running the digitize_inbox DAG through Airflow over {batch.relative_to(ROOT)} "
        "(OCR takes a few seconds a page)")
    started = time.monotonic()
    run_dag([str(ROOT / ".venv" / "bin" / "airflow"), "dags", "test", "digitize_inbox",
             "--conf", json.dumps({"inbox": str(INBOX)})], env)
    say(f"DAG run finished in {time.monotonic() - started:.0f} s (Airflow's own log: "
        f"{AIRFLOW_LOG.relative_to(ROOT)})")
    after = json.loads(library(_DOCUMENTS, env))
    _summary(before, after)

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    say("coverage against the plan's targets, as of today")
    run([PY, "-m", "digitize", "coverage", "--format", "csv", "--out", str(OUT / "coverage.csv")], env)
    run([PY, "-m", "digitize", "coverage", "--format", "html", "--out", str(OUT / "coverage.html")], env, quiet=True)
    run([PY, "-m", "digitize", "coverage", "--format", "xlsx", "--out", str(OUT / "coverage.xlsx")], env, quiet=True)
    say("quarantined documents")
    run([PY, "-m", "digitize", "quarantine", "list"], env)
    say("copying the archived documents into demo-output/archive")
    print(library(_COPY, env, str(OUT / "archive")), end="")
    archived = [d for d in after if d["status"] == "ARCHIVED"]
    print(f"\nOpen the signed PDFs, their sidecars and the coverage report in {OUT}/")
    if archived:
        code = archived[0]["code"]
        print("Explore the archive with the README's environment, e.g.:\n"
              "  set -a; . ./.env; set +a\n"
              f"  .venv/bin/python -m digitize show {code}\n"
              f"  .venv/bin/python -m digitize verify {code}\n"
              "  .venv/bin/python -m digitize search 'quyền sử dụng đất'\n"
              "or start the Airflow UI with: make airflow")
    return 0


def _summary(before: list[dict[str, str]], after: list[dict[str, str]]) -> None:
    """What this run added, and what it found already archived (same bytes: the same document)."""
    known = {d["id"] for d in before}
    new = [d for d in after if d["id"] not in known]
    say(f"this run: {len(new)} new document(s); {len(after)} in the catalog")
    for doc in after:
        mark = "new " if doc["id"] not in known else "kept"
        print(f"  {mark} {doc['status']:<11} {doc['code'] or '-':<30} {doc['files']}")
    if not new and after:
        print("  every scan of the sample batch was already in the catalog: the run reported them as duplicates "
              "of their existing codes (above) and archived nothing twice")


_WHERE = """
from digitize.archive import open_archive
from digitize.config import load_settings
settings = load_settings()
print(f"{settings.catalog_url} and {open_archive(settings)!r}")
"""

_DOCUMENTS = """
import json
from digitize.catalog import Catalog
from digitize.config import load_settings
catalog = Catalog(load_settings().catalog_url)
print(json.dumps([{"id": d.id, "status": d.status, "code": d.code, "files": ", ".join(f.name for f in d.files)}
                  for d in catalog.documents()]))
"""

_COPY = """
import sys
from pathlib import Path
from digitize.archive import open_archive
from digitize.config import load_settings
out = Path(sys.argv[1])
archive = open_archive(load_settings())
count = 0
for key in archive.list_keys("documents/"):
    target = out / key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(archive.get(key))
    count += 1
print(f"{count} object(s) copied from {archive!r}")
"""

if __name__ == "__main__":
    sys.exit(main())
