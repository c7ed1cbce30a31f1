"""Warm task processes: what ``preload`` imports, and which Airflow processes do it.

Airflow forks every task from a long-lived process; whatever that process imported, the task
does not import again. The check runs in a fresh interpreter, as a worker would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from robustness_support import NOOP_OCR

REPO = Path(__file__).resolve().parent.parent

# Packages whose import costs a task real CPU (OpenCV alone ~0.3 s); none may be left for the first document.
HEAVY = {"cv2", "numpy", "pikepdf", "pyhanko", "pyhanko_certvalidator", "sqlalchemy", "boto3", "botocore",
         "jsonschema", "PIL", "cryptography", "asn1crypto", "aiohttp", "lxml", "psycopg", "rapidfuzz", "qrcode"}

CHILD = r"""
import json, sys
from pathlib import Path
from typing import Any
sys.path.insert(0, sys.argv[2])
from imagegen import render_page, save
from digitize.intake.manifest import read_manifest
from digitize import pipeline

batch = Path(sys.argv[1])
batch.mkdir(parents=True)
save(render_page(("Số 000001",), width_in=2.0, height_in=1.0, font_pt=10.0), batch / "p.png", fmt="PNG")
(batch / "manifest.csv").write_text("file,agency_code,kind,title,issued_date\n"
                                    "p.png,000.00.12.H99,TP,Giấy tờ,2022-01-01\n", encoding="utf-8")
ctx = pipeline.PipelineContext()
ctx.catalog.upgrade()
ctx.catalog.import_agencies(Path(sys.argv[3]))
ctx.archive.ensure_bucket()
registered = pipeline.register_batch(ctx.catalog, read_manifest(batch))
if sys.argv[4] == "preload":
    pipeline.preload()
from digitize.signing import stamp
from digitize.archive import sidecar_validator
before = set(sys.modules)
fonts = stamp.prepared_font.cache_info().misses
validators = sidecar_validator.cache_info().misses
outcome = pipeline.process_document(ctx, registered.to_process[0], batch)
import gc
print(json.dumps({"status": outcome.status, "new": sorted(set(sys.modules) - before),
                  "fonts_prepared": stamp.prepared_font.cache_info().misses - fonts,
                  "validators_built": sidecar_validator.cache_info().misses - validators,
                  "frozen": gc.get_freeze_count()}))
"""


def _first_document(tmp_path: Path, s3_server: str, demo_pki, mode: str) -> dict:  # type: ignore[no-untyped-def]
    env = {**os.environ, "DIGITIZE_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
           "DIGITIZE_S3_ENDPOINT_URL": s3_server, "DIGITIZE_S3_BUCKET": f"preload-{mode}",
           "DIGITIZE_SIGNING_PKCS12": str(demo_pki.pkcs12), "DIGITIZE_SIGNING_PASSPHRASE": demo_pki.passphrase,
           "DIGITIZE_TRUST_ROOTS": str(demo_pki.root_cert), "DIGITIZE_PLUGINS": NOOP_OCR}
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "batch"), str(REPO / "tests"),
                           str(REPO / "samples" / "agencies.csv"), mode],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_after_preload_the_first_document_imports_nothing_heavy_nor_prepares_the_font(tmp_path: Path, s3_server: str,
                                                                    demo_pki) -> None:  # type: ignore[no-untyped-def]
    cold = _first_document(tmp_path / "cold", s3_server, demo_pki, "cold")
    warm = _first_document(tmp_path / "warm", s3_server, demo_pki, "preload")
    assert cold["status"] == warm["status"] == "ARCHIVED"
    heavy = lambda modules: {m.split(".")[0] for m in modules} & HEAVY  # noqa: E731
    assert heavy(cold["new"]) >= {"cv2", "pyhanko", "pikepdf"}, "the check would not notice a missing preload"
    assert heavy(warm["new"]) == set(), sorted(m for m in warm["new"] if m.split(".")[0] in HEAVY)
    assert (cold["fonts_prepared"], warm["fonts_prepared"]) == (1, 0), "the stamp font is prepared once, up front"
    assert (cold["validators_built"], warm["validators_built"]) == (1, 0), "so is the sidecar schema's validator"
    # what preload loaded is out of the collector's sight: a forked child's first full collection skips it
    assert cold["frozen"] == 0 and warm["frozen"] > 100_000, (cold["frozen"], warm["frozen"])


@pytest.mark.parametrize(("argv", "executor", "expected"), [
    (["airflow", "celery", "worker", "--queues", "default"], "CeleryExecutor", True),
    (["airflow", "scheduler"], "LocalExecutor", True),
    (["airflow", "scheduler"], "CeleryExecutor", False),  # Celery workers fork the tasks, not the scheduler
    (["airflow", "api-server"], "LocalExecutor", False),
    (["airflow", "dag-processor"], "LocalExecutor", False),
    (["airflow", "dags", "trigger", "digitize_backlog"], "LocalExecutor", False),
    (["airflow", "celery", "flower"], "CeleryExecutor", False),
])
def test_only_the_processes_that_fork_tasks_preload(argv: list[str], executor: str, expected: bool) -> None:
    assert _local_settings().forks_tasks(argv, executor) is expected


def _local_settings() -> Any:
    """Loaded under another name: registering it as ``airflow_local_settings`` in this process would make
    Airflow's own start-up code (the in-process API apps of later tests) pick it up as this process's."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("local_settings_under_test", REPO / "plugins" /
                                                  "airflow_local_settings.py")
    assert spec is not None and spec.loader is not None
    local_settings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(local_settings)
    return local_settings


def test_the_backlog_forms_priority_reaches_only_its_own_runs() -> None:
    """The cluster policy weighs a backlog run's task instances by the form's choice and leaves the rest alone
    (the inbox's chunks keep their 10, whatever a run's conf says). Runs end to end: tests/test_backlog.py."""
    from types import SimpleNamespace

    hook = _local_settings().task_instance_mutation_hook

    def weight(dag_id: str, conf: dict[str, Any] | None, run: bool = True) -> int:
        ti = SimpleNamespace(dag_id=dag_id, priority_weight=7)
        hook(ti, SimpleNamespace(conf=conf) if run else None)
        return ti.priority_weight

    assert [weight("digitize_backlog", {"priority": p}) for p in ("low", "normal", "high")] == [1, 5, 20]
    assert weight("digitize_inbox", {"priority": "high"}) == 7
    assert weight("digitize_backlog", {"priority": "urgent"}) == weight("digitize_backlog", None) == 7
    assert weight("digitize_backlog", {"priority": "high"}, run=False) == 7  # no run at hand: nothing to read


def test_a_celery_worker_process_starts_with_the_library_imported() -> None:
    """The real hook, imported as Airflow imports it, in a process that calls itself a Celery worker."""
    code = ("import os, sys; sys.argv = ['airflow', 'celery', 'worker']; import airflow, airflow.settings; "
            "print('cv2' in sys.modules, 'pyhanko.sign' in sys.modules, "
            "'airflow.providers.amazon.aws.hooks.s3' in sys.modules, len(os.listdir('/proc/self/task')))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["AIRFLOW__CORE__EXECUTOR"] = "CeleryExecutor"
    warm = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    # No thread besides the main one: a fork would lose any other (and a BLAS pool per core oversubscribes).
    assert warm.stdout.split() == ["True", "True", "True", "1"], warm.stderr[-2000:]
    off = subprocess.run([sys.executable, "-c", code], env={**env, "DIGITIZE_AIRFLOW_PRELOAD": "0"},
                         capture_output=True, text=True, timeout=300)
    assert off.stdout.split()[:3] == ["False", "False", "False"], off.stderr[-2000:]
