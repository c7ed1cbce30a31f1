"""``make demo`` shows the DAG run as a newcomer can follow it: each task, what the tasks print, Airflow's errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent

# Lines of a real `airflow dags test digitize_inbox` (Airflow 3.3, 3 Dec 2026), shortened at the end.
RUN = """\
2026-12-03T20:33:26.603249Z [info     ] DAG bundles loaded: dags-folder [airflow.dag_processing.bundles.manager]
2026-12-03T20:33:27.948186Z [info     ] creating dag run               [airflow.serialization.definitions.dag]
2026-12-03T20:33:28.053484Z [info     ] [DAG TEST] starting task_id=discover map_index=-1 [airflow.sdk.definitions.dag]
2026-12-03T20:33:33.345575Z [info     ] Task instance state updated    [airflow.api_fastapi.execution_api.routes]
1 complete batch(es) in /tmp/check/var/demo/inbox: ['demo-20261203-203323']
2026-12-03T20:33:33.680671Z [info     ] Done. Returned value was: ['/tmp/check/var/demo/inbox/demo-20261203-203323']
2026-12-03T20:33:34.888604Z [warning  ] Skipping masking for a secret as it's too short (<5 chars) [airflow._shared]
2026-12-03T20:33:35.469403Z [info     ] [DAG TEST] starting task_id=process_chunk map_index=0 [airflow.sdk]
document 6: QUARANTINED CORRUPT_FILE on vm:3080
2026-12-03T20:33:40.000000Z [error    ] Task failed with exception     [task]
Traceback (most recent call last):
archived: 5, quarantined: 1 (CORRUPT_FILE: 1), already done: 0, duplicates: 0, manifest rows refused: 0
"""


def _demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_script", REPO / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_shows_tasks_their_output_and_errors_but_not_airflows_own_log() -> None:
    demo = _demo()
    shown = [text for line in RUN.splitlines(keepends=True) if (text := demo.shown(line)) is not None]
    assert shown == [
        "  task discover",
        "1 complete batch(es) in /tmp/check/var/demo/inbox: ['demo-20261203-203323']",
        "  task process_chunk #0",
        "document 6: QUARANTINED CORRUPT_FILE on vm:3080",
        "2026-12-03T20:33:40.000000Z [error    ] Task failed with exception     [task]",
        "Traceback (most recent call last):",
        "archived: 5, quarantined: 1 (CORRUPT_FILE: 1), already done: 0, duplicates: 0, manifest rows refused: 0",
    ]
