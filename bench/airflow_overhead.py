"""What Airflow adds to the library's own speed, in the same session on the same machine.

(a) the library alone: register, then ``process_in_workers`` with one OCR slot per core, as
    ``process --workers <cores>`` runs (two forked processes per slot, one Tesseract each), no Airflow;
(b) digitize_backlog on LocalExecutor (real scheduler, dag-processor, api-server; scripts/cluster.sh
    with ``CLUSTER_EXECUTOR=LocalExecutor``);
(c) digitize_backlog on the Celery profile (scripts/cluster.sh: Redis, two workers).
All three use PostgreSQL for the catalog and the local S3 endpoint, the same one-page documents
and the same chunk size; each Airflow run starts on a fresh cluster, warmed up by a dry run of the
form, and is compared with the mean of two library runs on that cluster, one just before it and
one just after: the cores' speed drifts by up to 30 % within minutes. ``--rounds`` repeats
(library, LocalExecutor, library), (library, Celery, library). Then a synthetic backlog with OCR
replaced by the no-op engine (the plugin ``tests/plugins/noop_ocr.py``, loaded in every process
through ``DIGITIZE_PLUGINS``) at growing sizes, on LocalExecutor, against the library alone, to
show Airflow's cost per document stays flat.

    .venv/bin/python bench/airflow_overhead.py --docs 200 --rounds 3 --synthetic 2000,5000,20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
AIRFLOW = str(REPO / ".venv" / "bin" / "airflow")
NOOP_OCR = str(REPO / "tests" / "plugins" / "noop_ocr.py")


def make_documents(batch: Path, count: int, *, tiny: bool, kind: str = "KQ") -> Path:
    """``count`` distinct one-page PNGs with a manifest: a full text page, or a tiny one for the no-op runs."""
    import csv
    import io

    from imagegen import LINES, PARAGRAPH, render_page, save

    batch.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", "agency_code", "kind", "title", "issued_date"])
    for i in range(count):
        name = f"p-{i:06d}.png"
        if tiny:
            page = render_page((f"Số {i:06d}",), width_in=2.0, height_in=1.0, font_pt=10.0)  # distinct bytes
        else:
            page = render_page(LINES + PARAGRAPH[: 3 + i % 5] + (f"Số hồ sơ {i:06d}",), width_in=7.0,
                               height_in=5.0, font_pt=12.0)
        save(page, batch / name, fmt="PNG")
        writer.writerow([name, "000.00.12.H99", kind, f"Giấy tờ số {i:06d}", "2022-01-01"])
    (batch / "manifest.csv").write_text(out.getvalue(), encoding="utf-8")
    return batch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def cluster(executor: str, base_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """scripts/cluster.sh with the given executor; yields the environment a client needs."""
    root = Path(tempfile.mkdtemp(prefix="digitize-bench-", dir="/tmp"))
    os.chmod(root, 0o755)
    env = {**base_env, "CLUSTER_DIR": str(root / "c"), "CLUSTER_API_PORT": str(_free_port()),
           "CLUSTER_EXECUTOR": executor, "AIRFLOW_HOME": str(root / "home"), "POSTGRES_FSYNC": "on"}
    (root / "home").mkdir()
    log = (root / "cluster.out").open("w")
    proc = subprocess.Popen(["bash", str(REPO / "scripts" / "cluster.sh")], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ready = root / "c" / "ready"
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError((root / "cluster.out").read_text()[-3000:])
            time.sleep(1)
        info = dict(line.split("=", 1) for line in ready.read_text().splitlines() if "=" in line)
        yield {**env, **info}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=120)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _metadata(env: dict[str, str]) -> Any:
    """A connection to Airflow's metadata database, to watch runs without spawning CLI processes.

    Polling with ``airflow dags list-runs`` once a second cost about 0.7 of the two cores (every
    call imports Airflow) and was counted against Airflow in the first runs below.
    """
    import psycopg

    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg", "postgresql")
    return psycopg.connect(url, autocommit=True)


def _start(env: dict[str, str], run_id: str, conf: dict[str, Any]) -> None:
    """Unpause (other DAGs stay paused, so they take no worker slot) and trigger once the DAG is parsed."""
    started = time.monotonic()
    while _airflow(env, "dags", "unpause", "digitize_backlog").returncode != 0 or _airflow(
            env, "dags", "trigger", "digitize_backlog", "--run-id", run_id, "--conf", json.dumps(conf)).returncode:
        if time.monotonic() - started > 180:
            raise TimeoutError("digitize_backlog was not parsed in 180 s")
        time.sleep(2)


def _airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=300)


# Processes by role, from their command lines; the first match wins (a task's process title is
# "airflow worker -- <task instance id>", its LocalExecutor supervisor's "airflow worker -- LocalExecutor: …").
# The last field: count the CPU of the role's finished children too (Tesseract, qpdf), only for roles
# whose children are not themselves sampled (a supervisor's child is a task: it would count twice).
ROLES = (("Tesseract helpers", ("tesseract_server.py",), False),
         ("task supervisors", ("worker -- LocalExecutor",), False), ("Celery workers", ("celery",), False),
         ("tasks", ("airflow worker -- ",), True), ("scheduler", ("airflow scheduler",), False),
         ("dag-processor", ("dag-processor",), False), ("api-server", ("api-server", "api_server"), False),
         ("triggerer", ("triggerer",), False), ("library processes", (Path(__file__).name,), True),
         ("S3 endpoint", ("digitize.dev.s3server",), False), ("PostgreSQL", ("postgres",), False),
         ("Redis", ("redis-server",), False))
WORKER_ROLES = ("tasks", "task supervisors", "Celery workers", "library processes", "Tesseract helpers")
"""What runs on a worker machine in the deployment guide's layout (the rest is the control machine's)."""


def _own_cpu() -> float:
    """This process's CPU (user + system, all its threads), its children left out."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _minor_faults(pid: int) -> tuple[int, int]:
    """Minor page faults of the process and of its finished children, from /proc: psutil has no field for it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0, 0
    return int(fields[7]), int(fields[8])  # minflt, cminflt (fields 10 and 11 of stat(5))


Sample = tuple[float, float, int, int]
"""A process's CPU, its finished children's CPU, its minor page faults, its children's."""


class CpuByRole:
    """CPU seconds (user + system) each role of process used while the block ran, sampled every 0.5 s.

    Processes that start and end between two samples are missed: short ones, so the figures are a floor.
    """

    def __init__(self, cluster_dir: str, *, own_role: str | None = None) -> None:
        import threading

        self.cluster_dir = cluster_dir  # PostgreSQL: only this cluster's server (its backends' parent names it)
        self.own_role = own_role
        """The role of this script's own CPU (its sampler thread left out), when the block's work runs in it: the
        library run registers and hands out its documents here, as the plan and the chunk tasks do in Airflow."""
        self._sampler_cpu = 0.0
        self.seconds: dict[str, float] = {}
        self.faults: dict[str, int] = {}  # minor page faults, same accounting as the CPU
        self._first: dict[tuple[int, float], Sample] = {}
        self._last: dict[tuple[int, float], Sample] = {}
        self._role: dict[tuple[int, float], tuple[str, bool]] = {}
        self._parents: set[int] = set()  # of the processes sampled: their parents
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> CpuByRole:
        self._since = time.time()
        self._own_start = _own_cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._total()
        if self.own_role is not None:
            own = _own_cpu() - self._own_start - self._sampler_cpu
            self.seconds[self.own_role] = self.seconds.get(self.own_role, 0.0) + own

    def _sample(self) -> None:
        import psutil

        own = os.getpid()  # this script: counted apart (own_role), without this sampler, or not at all
        while True:
            for proc in psutil.process_iter():
                try:
                    created, cmd, times = proc.create_time(), " ".join(proc.cmdline()), proc.cpu_times()
                    ppid = proc.ppid()
                except psutil.Error:
                    continue
                found = next(((name, kids) for name, keys, kids in ROLES if any(k in cmd for k in keys)), None)
                if found is None or proc.pid == own:
                    continue
                role, kids = found
                if role == "PostgreSQL" and not self._ours(proc, cmd):
                    continue
                key = (proc.pid, created)
                now = (times.user + times.system, times.children_user + times.children_system,
                       *_minor_faults(proc.pid))
                self._first.setdefault(key, (0.0, 0.0, 0, 0) if created >= self._since else now)
                self._last[key] = now
                self._role[key] = (role, kids)
                self._parents.add(ppid)
            self._sampler_cpu = time.thread_time()  # this thread's CPU so far: not the block's work
            if self._stop.wait(0.5):
                return

    def _total(self) -> None:
        """Each role's CPU and faults between the first and last sample of its processes. A role's children count
        (Tesseract) unless they were sampled themselves: a chunk task's forked workers are tasks too, and their
        CPU would reach the task's children's times a second time when they end."""
        for key, (role, kids) in self._role.items():
            first, last = self._first[key], self._last[key]
            with_children = kids and key[0] not in self._parents
            used = last[0] - first[0] + (last[1] - first[1] if with_children else 0.0)
            faults = last[2] - first[2] + (last[3] - first[3] if with_children else 0)
            self.seconds[role] = self.seconds.get(role, 0.0) + used
            self.faults[role] = self.faults.get(role, 0) + faults

    def _ours(self, proc: Any, cmd: str) -> bool:
        import psutil

        try:
            return self.cluster_dir in cmd or self.cluster_dir in " ".join(proc.parent().cmdline())
        except (psutil.Error, AttributeError):
            return False

    def worker_faults(self) -> int:
        """Minor page faults of the processes a worker machine runs: memory mapped and touched afresh."""
        return sum(self.faults.get(role, 0) for role in WORKER_ROLES)

    def worker_seconds(self) -> float:
        """CPU of the processes a worker machine runs (:data:`WORKER_ROLES`), their OCR children included."""
        return sum(self.seconds.get(role, 0.0) for role in WORKER_ROLES)

    def row(self, wall: float) -> str:
        """"role 12.3 s (0.11 core)" for each role, most first."""
        return ", ".join(f"{role} {sec:.1f} s ({sec / wall:.2f} core)"
                         for role, sec in sorted(self.seconds.items(), key=lambda kv: -kv[1]))


def _wait(env: dict[str, str], run_id: str) -> dict[str, Any]:
    """Poll the run's state every 0.2 s on one connection (a 1 s poll added ~0.5 s to each Airflow run's wall)."""
    with _metadata(env) as conn:
        while True:
            row = conn.execute("SELECT state, start_date, end_date FROM dag_run WHERE dag_id = 'digitize_backlog' "
                               "AND run_id = %s", (run_id,)).fetchone()
            if row is not None and row[0] in ("success", "failed"):
                return {"state": row[0], "start_date": row[1], "end_date": row[2]}
            time.sleep(0.2)


def warm_up(env: dict[str, str], source: Path) -> float:
    """A dry run of the same form (counts and validates, writes nothing) on the fresh cluster; its seconds.

    The first task after the services start waits ~4 s longer (one-off probe, 27 Nov: plan took 4.8 s
    cold, 1.0 s warm; the api-server used ~4 s of CPU answering its first calls). A deployment's services run
    for weeks, so that start-up is not a cost of each run; it is reported apart.
    """
    started = time.monotonic()
    _start(env, "warm-up", {"source": str(source), "dry_run": True})
    assert _wait(env, "warm-up")["state"] == "success"
    return time.monotonic() - started


def airflow_run(env: dict[str, str], source: Path, chunk_size: int, run_id: str) -> dict[str, Any]:
    """Warm the cluster up, then trigger digitize_backlog and wait; the run's own duration (start→end),
    wall time from the trigger, and the CPU each role of process used meanwhile."""
    warm = warm_up(env, source)
    _start(env, run_id, {"source": str(source), "chunk_size": chunk_size, "priority": "normal"})
    triggered = time.monotonic()
    with CpuByRole(env["CLUSTER_DIR"]) as cpu:
        found = _wait(env, run_id)
    wall = time.monotonic() - triggered
    return {"state": found["state"], "warm_up_seconds": warm,
            "run_seconds": (found["end_date"] - found["start_date"]).total_seconds(),
            "wall_seconds": wall, "cpu": cpu.row(wall), "worker_cpu": cpu.worker_seconds(),
            "worker_faults": cpu.worker_faults()}


def task_time(env: dict[str, str], run_id: str) -> dict[str, float]:
    """Task instances of the run, their summed running time, and where the run's time went; prints each task's
    scheduled, queued, start and end in seconds from the run's start (where the gaps are).

    ``head``: run start → first chunk task start (plan, scheduling); ``tail``: last chunk end → run end
    (summarize); ``chunk_median``: one chunk task's start → end.
    """
    with _metadata(env) as conn:
        rows = conn.execute(
            "SELECT ti.task_id, ti.map_index, ti.scheduled_dttm, ti.queued_dttm, ti.start_date, ti.end_date, "
            "r.start_date, r.end_date FROM task_instance ti JOIN dag_run r ON r.dag_id = ti.dag_id "
            "AND r.run_id = ti.run_id WHERE ti.dag_id = 'digitize_backlog' AND ti.run_id = %s "
            "ORDER BY ti.start_date NULLS LAST", (run_id,)).fetchall()
    run_start, run_end = rows[0][6], rows[0][7]

    def at(moment: Any) -> str:
        return "—" if moment is None else f"{(moment - run_start).total_seconds():6.2f}"

    print(f"timeline of {run_id} (s from the run's start; scheduled / queued / start / end); run ends at "
          f"{at(run_end)}")
    for task_id, index, *moments, _, _ in rows:
        print(f"  {task_id}[{index}]: " + " / ".join(at(m) for m in moments), flush=True)
    ran = [(task_id, start, end) for task_id, _, _, _, start, end, _, _ in rows if start and end]
    chunks = [r for r in ran if r[0].split(".")[0] == "process"]  # the mapped chunk task (or its group)
    durations = sorted((end - start).total_seconds() for _, start, end in chunks)
    return {"tasks": float(len(rows)),
            "task_seconds": sum((end - start).total_seconds() for _, start, end in ran),
            "chunks": float(len(chunks)), "chunk_median": durations[len(durations) // 2] if durations else 0.0,
            "head": (min(r[1] for r in chunks) - run_start).total_seconds() if chunks else 0.0,
            "tail": (run_end - max(r[2] for r in chunks)).total_seconds() if chunks else 0.0}


def timeline(tis: dict[str, float]) -> str:
    """One line: how the run's time divides between the serial steps and the chunks."""
    return (f"{int(tis['chunks'])} chunk tasks, median {tis['chunk_median']:.1f} s each; before the first chunk "
            f"{tis['head']:.1f} s, after the last {tis['tail']:.1f} s")


def _archived(env: dict[str, str], batch_id: str) -> int:
    """Documents of the batch the Airflow run archived, counted in the cluster's catalog."""
    from digitize.catalog.store import Catalog

    return len(Catalog(env["DIGITIZE_CATALOG_URL"]).documents(batch_id=batch_id, status="ARCHIVED"))


def library_run(env: dict[str, str], batch: Path, database: str) -> dict[str, Any]:
    """Register, then process as ``process --workers <cores>`` does (:func:`digitize.pipeline.process_in_workers`:
    two forked processes per core, one Tesseract per core at a time), as a chunk task does with its slots;
    catalog in its own PostgreSQL database."""
    import psycopg

    base = env["DIGITIZE_CATALOG_URL"].rsplit("/", 1)[0]
    with psycopg.connect(base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    for key in [k for k in os.environ if k.startswith("DIGITIZE_")]:  # e.g. a developer's .env: its archive
        del os.environ[key]
    os.environ.update({k: v for k, v in env.items() if k.startswith(("DIGITIZE_", "AWS_"))})
    os.environ.update({"DIGITIZE_CATALOG_URL": f"{base}/{database}", "DIGITIZE_S3_BUCKET": database.replace("_", "-"),
                       "DIGITIZE_OCR_JOBS": "1"})
    from digitize.catalog.store import Catalog
    from digitize.intake.manifest import read_manifest
    from digitize.pipeline import PipelineContext, process_in_workers, register_batch

    ctx = PipelineContext()
    ctx.catalog.upgrade()
    ctx.catalog.import_agencies(REPO / "samples" / "agencies.csv")
    ctx.archive.ensure_bucket()
    start = time.perf_counter()  # like the Airflow runs: from registration to the last document
    with CpuByRole(env["CLUSTER_DIR"], own_role="library processes") as cpu:
        registered = register_batch(ctx.catalog, read_manifest(batch))
        outcomes = process_in_workers(ctx.settings, registered.to_process, batch, os.cpu_count() or 1)
    results = [(outcome.status, outcome.pages) for outcome in outcomes]
    seconds = time.perf_counter() - start
    Catalog(os.environ["DIGITIZE_CATALOG_URL"]).documents()
    return {"wall_seconds": seconds, "archived": sum(s == "ARCHIVED" for s, _ in results),
            "pages": sum(p for _, p in results), "cpu": cpu.row(seconds), "worker_cpu": cpu.worker_seconds(),
            "worker_faults": cpu.worker_faults()}


def _library_row(label: str, lib: dict[str, Any], docs: int) -> str:
    return (f"| {label} | {lib['wall_seconds']:.1f} | {60 * lib['pages'] / lib['wall_seconds']:.1f} | — | "
            f"{lib['worker_cpu']:.1f} | — | {lib['worker_faults'] / docs:.0f} |")


def bracketed_way(way: str, name: str, env: dict[str, str], batch: Path, args: argparse.Namespace,
                  tag: str) -> tuple[list[str], str, tuple[float, float]]:
    """One Airflow way between two runs of the library on the same cluster: its table rows, where its CPU went,
    and its wall time and its worker-side CPU over the means of the library's two.

    The cores of these machines change speed by up to 30 % within minutes (bench/results/pipeline.md): a
    library run 10 minutes earlier is no baseline. Bracketing puts the library's runs just before and just
    after, on the same services.
    """
    before = library_run(env, batch, f"lib_{tag}_before")
    print(_library_row(f"(a) library, before {name}", before, args.docs), flush=True)
    run = airflow_run(env, batch.parent, args.chunk_size, f"bench-{tag}")
    tis = task_time(env, f"bench-{tag}")
    after = library_run(env, batch, f"lib_{tag}_after")
    for lib in (before, after):
        assert lib["archived"] == args.docs, lib
    assert run["state"] == "success" and _archived(env, batch.name) == args.docs, run
    wall = (before["wall_seconds"] + after["wall_seconds"]) / 2
    cpu = (before["worker_cpu"] + after["worker_cpu"]) / 2
    ratio = run["wall_seconds"] / wall
    rows = [_library_row(f"(a) library, before {name}", before, args.docs),
            f"| {way} {name} ({run['state']}) | {run['wall_seconds']:.1f} (run {run['run_seconds']:.1f}) | "
            f"{60 * args.docs / run['wall_seconds']:.1f} | **{ratio:.2f}** | {run['worker_cpu']:.1f} | "
            f"{run['worker_cpu'] / cpu:.2f} | {run['worker_faults'] / args.docs:.0f} |",
            _library_row(f"(a) library, after {name}", after, args.docs)]
    line = (f"- {way}: {run['cpu']}; {timeline(tis)}; warm-up dry run {run['warm_up_seconds']:.1f} s; "
            f"the library before it: {before['cpu']}")
    print(*rows[1:], line, sep="\n", flush=True)
    return rows, line, (ratio, run["worker_cpu"] / cpu)


IDLE_SECONDS = 30.0
"""How long an idle cluster's scheduler is watched after a run, for its CPU with nothing to do."""


def executor_ab(base_env: dict[str, str], work: Path, docs: int, chunk_size: int) -> list[str]:
    """The same backlog on LocalExecutor twice: the project's executor with the scheduler's idle sleep at 0
    (``plugins/prompt_local.py``, airflow.cfg's) and Airflow's own with its default 1 s; each run's wall time,
    how its time divides, and the scheduler's CPU while the cluster then idles. The timelines are printed."""
    batch = make_documents(work / "ab" / "bench-ab", docs, tiny=False)
    rows = ["| executor | wall (s) | where the run's time went | scheduler CPU when idle (core) |", "|---|---|---|---|"]
    for label, over in (("`prompt_local.LocalExecutor`, idle sleep 0", {}),
                        ("Airflow's `LocalExecutor`, idle sleep 1 s", {
                            "CLUSTER_EXECUTOR_CLASS": "LocalExecutor",
                            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1"})):
        with cluster("LocalExecutor", {**base_env, **over}) as env:
            run = airflow_run(env, batch.parent, chunk_size, "ab")
            tis = task_time(env, "ab")
            assert run["state"] == "success" and _archived(env, batch.name) == docs, run
            with CpuByRole(env["CLUSTER_DIR"]) as idle:
                time.sleep(IDLE_SECONDS)
        rows.append(f"| {label} | {run['wall_seconds']:.1f} (run {run['run_seconds']:.1f}) | {timeline(tis)} | "
                    f"{idle.seconds.get('scheduler', 0.0) / IDLE_SECONDS:.3f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200, help="one-page documents OCR'd by each of (a), (b), (c)")
    parser.add_argument("--chunk-size", type=int, default=50, help="documents per task (the form's default)")
    parser.add_argument("--synthetic", default="2000,5000,20000", help="no-op OCR backlog sizes ('' to skip)")
    parser.add_argument("--synthetic-library", default="2000",
                        help="sizes of the no-op runs also timed through the library alone (the baseline)")
    parser.add_argument("--synthetic-chunk", type=int, default=50, help="documents per task of the no-op runs")
    parser.add_argument("--skip-ocr", action="store_true", help="only the synthetic part")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of (library, LocalExecutor, library) then (library, Celery, library)")
    parser.add_argument("--executors", default="LocalExecutor,CeleryExecutor", help="the Airflow ways of a round")
    parser.add_argument("--ocr-jobs", type=int, default=1,
                        help="DIGITIZE_OCR_JOBS of the Airflow ways: a chunk task's OCR slots (the default "
                             "deployment's is the cores: one chunk task at a time per 2-core worker)")
    parser.add_argument("--executor-ab", type=int, default=0, metavar="DOCS",
                        help="only this: DOCS documents on LocalExecutor with the project's executor, then Airflow's "
                             "own (idle sleep 1 s), chunks of --chunk-size")
    args = parser.parse_args()

    from digitize.signing.pki import create_demo_pki

    work = Path(tempfile.mkdtemp(prefix="digitize-bench-data-"))
    pki = create_demo_pki(work / "pki", agency_name="Ủy ban nhân dân tỉnh Mẫu", key_type="ec-p256")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITIZE_", "AIRFLOW"))}
    base_env.update({"DIGITIZE_SIGNING_PKCS12": str(pki.pkcs12), "DIGITIZE_SIGNING_PASSPHRASE": pki.passphrase,
                     "DIGITIZE_TRUST_ROOTS": str(pki.root_cert), "DIGITIZE_SIGNING_STAMP": "false",
                     "DIGITIZE_OCR_JOBS": str(args.ocr_jobs), "OMP_THREAD_LIMIT": "1", "CLUSTER_SEED": "1",
                     "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_DEFAULT_REGION": "us-east-1",
                     "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                     "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"})
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}; load average {os.getloadavg()}")
    if args.executor_ab:
        print(*executor_ab(base_env, work, args.executor_ab, args.chunk_size), sep="\n")
        return
    rows: list[str] = []
    cpu: list[str] = []  # where the CPU went, one line per run
    ratios: dict[str, list[tuple[float, float]]] = {"LocalExecutor": [], "CeleryExecutor": []}
    if not args.skip_ocr:
        batch = make_documents(work / "ocr" / "bench-ocr", args.docs, tiny=False)
        for number in range(1, args.rounds + 1):
            for executor, way, name in (("LocalExecutor", "(b)", "LocalExecutor"),
                                        ("CeleryExecutor", "(c)", "Celery, 2 workers")):
                if executor not in args.executors.split(","):
                    continue
                print(f"round {number}, {name}: library, Airflow, library", flush=True)
                with cluster(executor, base_env) as env:
                    table, line, wall_and_cpu = bracketed_way(way, name, env, batch, args,
                                                              f"{number}_{executor[:5].lower()}")
                rows += [f"| **round {number}** | | | | | | |"] * (way == "(b)") + table
                cpu.append(line)
                ratios[executor].append(wall_and_cpu)
    noop_rows: list[str] = []
    with_library = {int(s) for s in args.synthetic_library.split(",") if s}
    for size in [int(s) for s in args.synthetic.split(",") if s]:
        # Results (TP) get no QR stamp: the no-op runs time everything around the document's own work.
        batch = make_documents(work / f"noop-{size}" / f"noop-{size}", size, tiny=True, kind="TP")
        noop_env = {**base_env, "DIGITIZE_PLUGINS": NOOP_OCR}
        chunk = max(args.synthetic_chunk, -(-size // 1024))
        with cluster("LocalExecutor", noop_env) as env:
            noop_lib = library_run(env, batch, f"noop_lib_{size}") if size in with_library else None
            run = airflow_run(env, batch.parent, chunk, f"noop-{size}")
            tis = task_time(env, f"noop-{size}")
            archived = _archived(env, batch.name)
        assert archived == size, (archived, size)  # every document really went through every other stage
        baseline = "—"
        if noop_lib is not None:
            assert noop_lib["archived"] == size, noop_lib
            baseline = (f"{noop_lib['wall_seconds']:.1f} s ({1000 * noop_lib['wall_seconds'] / size:.1f} ms/doc), "
                        f"Airflow +{1000 * (run['wall_seconds'] - noop_lib['wall_seconds']) / size:.1f} ms/doc")
        # Slot-seconds of the run not spent inside a task: scheduling, queueing, task start-up before the
        # task's own clock starts (2 pool slots, so the wall time counts twice).
        idle_ms = 1000 * (2 * run["run_seconds"] - tis["task_seconds"]) / size
        noop_rows.append(f"| {size} docs, {int(tis['tasks'])} tasks | {run['wall_seconds']:.1f} s "
                    f"(run {run['run_seconds']:.1f} s, {run['state']}) | {1000 * run['wall_seconds'] / size:.1f} | "
                    f"{1000 * tis['task_seconds'] / size:.1f} | {idle_ms:.1f} | {baseline} |")
        cpu.append(f"- {size} docs: Airflow {run['cpu']}; {timeline(tis)}"
                   + (f"; library {noop_lib['cpu']}" if noop_lib else ""))
        print(noop_rows[-1], cpu[-1], sep="\n", flush=True)
    if rows:
        print("| way | wall (s) | pages/min | × (a) | worker-side CPU (s) | × (a) | page faults/doc |",
              "|---|---|---|---|---|---|---|",
              *rows, sep="\n")
        for executor, found in ((e, f) for e, f in ratios.items() if f):  # the executors that ran
            # The same work's CPU ratio is mostly the cores' drift: the wall ratio divided by it estimates
            # Airflow's share at equal core speed (derived, not a measured wall time).
            print(f"{executor}: Airflow over the library (mean of the runs just before and after): "
                  + ", ".join(f"{wall:.2f}" for wall, _ in found)
                  + f"; under 1.10 in every round: {'yes' if all(wall < 1.10 for wall, _ in found) else 'no'}"
                  + "; divided by the worker-side CPU ratio: " + ", ".join(f"{wall / cpu:.2f}" for wall, cpu in found))
    if noop_rows:
        print("| backlog | Airflow wall | ms/doc | task time ms/doc | idle slot ms/doc | library alone |",
              "|---|---|---|---|---|---|", *noop_rows, sep="\n")
    print("", "CPU by role of process (user + system) while each run ran:", *cpu, sep="\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
