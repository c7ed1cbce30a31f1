"""The demo behind ``make demo``: the sample batch through Airflow's ``digitize_inbox``, then the coverage table.

Starts a local S3 endpoint (moto) on 127.0.0.1, runs the DAG with ``airflow dags
test`` over a fresh copy of ``samples/batch`` and a fresh demo catalog, reads the
archived objects back into ``demo-output/`` and prints the coverage table. Every
process it starts is stopped at the end, also on Ctrl-C or failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "var" / "demo"
OUT = ROOT / "demo-output"
PY = str(ROOT / ".venv" / "bin" / "python")


def say(message: str) -> None:
    print(f"\033[1m==> {message}\033[0m", flush=True)


def run(args: list[str], env: dict[str, str], *, quiet: bool = False) -> None:
    result = subprocess.run(args, env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None)
    if result.returncode != 0:
        if quiet:
            print(result.stdout)
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(args[:4])} …")


def main() -> int:
    env = dict(os.environ)
    endpoint = env["DIGITIZE_S3_ENDPOINT_URL"]
    port = urlparse(endpoint).port or 9010
    shutil.rmtree(DEMO, ignore_errors=True)
    shutil.rmtree(OUT, ignore_errors=True)
    (DEMO / "inbox").mkdir(parents=True)
    env["DIGITIZE_CATALOG_URL"] = f"sqlite:///{DEMO / 'catalog.db'}"
    env["DIGITIZE_QUIET_SECONDS"] = "0"

    say(f"starting the local S3 endpoint (moto) on {endpoint}")
    server = subprocess.Popen([PY, "-m", "digitize.dev.s3server", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(endpoint)
        say("fresh demo catalog: importing the sample agencies and register")
        run([PY, "-m", "digitize", "agencies", "import", "samples/agencies.csv"], env)
        run([PY, "-m", "digitize", "register", "import", "samples/register.csv"], env)

        batch = DEMO / "inbox" / f"demo-{date.today():%Y%m%d}"
        shutil.copytree(ROOT / "samples" / "batch", batch)
        (batch / "_READY").touch()
        say(f"running the digitize_inbox DAG through Airflow over {batch.relative_to(ROOT)} "
            "(OCR takes a few seconds a page)")
        started = time.monotonic()
        run([str(ROOT / ".venv" / "bin" / "airflow"), "dags", "test", "digitize_inbox",
             "--conf", json.dumps({"inbox": str(DEMO / "inbox")})], env)
        say(f"DAG run finished in {time.monotonic() - started:.0f} s")

        OUT.mkdir()
        say("coverage against the plan's targets, as of today")
        run([PY, "-m", "digitize", "coverage", "--format", "csv", "--out", str(OUT / "coverage.csv")], env)
        run([PY, "-m", "digitize", "coverage", "--format", "html", "--out", str(OUT / "coverage.html")], env,
            quiet=True)
        run([PY, "-m", "digitize", "coverage", "--format", "xlsx", "--out", str(OUT / "coverage.xlsx")], env,
            quiet=True)
        say("quarantined documents")
        run([PY, "-m", "digitize", "quarantine", "list"], env)
        say("reading the archive back from S3 into demo-output/archive")
        run([PY, "-c", _DOWNLOAD, str(OUT / "archive")], env)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=10)
        say("stopped the local S3 endpoint")
    print(f"\nOpen the signed PDFs, their sidecars and the coverage report in {OUT}/")
    return 0


def _wait_for(endpoint: str) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1)  # loopback endpoint we just started
            return
        except urllib.error.HTTPError:
            return  # it answers: that is all we wait for
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"the local S3 endpoint did not start on {endpoint}") from None
            time.sleep(0.2)


_DOWNLOAD = """
import sys
from pathlib import Path
from digitize.archive.s3 import S3Archive
from digitize.config import load_settings
out = Path(sys.argv[1])
archive = S3Archive.from_settings(load_settings())
count = 0
for key in archive.list_keys("documents/"):
    target = out / key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(archive.get(key))
    count += 1
    print("  " + key)
print(f"{count} object(s) downloaded")
"""

if __name__ == "__main__":
    sys.exit(main())
