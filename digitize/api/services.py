"""What the routes work with: catalog, archive and trust roots, kept in the app's state, handed out by a dependency."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from digitize.catalog import Catalog

if TYPE_CHECKING:
    from digitize.archive import Archive
    from digitize.config import Settings


class Services:
    """Catalog, archive and trust roots of the app, created on first use (importing the app costs nothing)."""

    def __init__(self, catalog: Catalog | None, archive: Archive | None, trust_roots: Sequence[Path] | None,
                 settings: Settings | None) -> None:
        self._catalog, self._archive, self._roots, self._settings = catalog, archive, trust_roots, settings
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from digitize.config import load_settings

            self._settings = load_settings()
        return self._settings

    @property
    def catalog(self) -> Catalog:
        with self._lock:
            if self._catalog is None:
                catalog = Catalog(self.settings.catalog_url)
                catalog.upgrade()
                self._catalog = catalog
            return self._catalog

    @property
    def archive(self) -> Archive:
        with self._lock:
            if self._archive is None:
                from digitize.archive import open_archive

                self._archive = open_archive(self.settings)
            return self._archive

    @property
    def trust_roots(self) -> Sequence[Path]:
        return self._roots if self._roots is not None else self.settings.trust_roots


def get_services(request: Request) -> Services:
    """The app's :class:`Services` (``app.state.services``, set by ``create_app``)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
