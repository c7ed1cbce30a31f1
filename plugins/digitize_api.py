"""The reuse API (``digitize.api.app``) inside Airflow's API server, under ``/digitize-api``.

Every Airflow process loads plugins, so nothing heavy is imported here: the
mounted object is a small ASGI shim that builds ``digitize.api.app.create_app()``
(catalog, pandas, S3 client) on the first request only. Authentication is the
API's own (a bearer token per calling system, from
``python -m digitize api token create NAME``), not Airflow's users: the callers
are other systems, and every route of the app requires a token.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/digitize-api"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyDigitizeApi:
    """ASGI app that creates the real FastAPI app on first use (lifespan events are answered as a no-op)."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        with self._lock:
            if self._app is None:
                from digitize.api import create_app

                self._app = create_app()
            return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self._get()(scope, receive, send)


app = LazyDigitizeApi()


class DigitizeApiPlugin(AirflowPlugin):
    name = "digitize_api"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "digitize reuse API"}]  # noqa: RUF012
