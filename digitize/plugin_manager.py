"""Loads the plugins ``DIGITIZE_PLUGINS`` names into the plugin manager every hook call goes through.

``DIGITIZE_PLUGINS`` is a comma-separated list of module names (``site_ocr.engine``) or paths to
``.py`` files, like OCRmyPDF's ``--plugins``. Being an environment variable, it reaches every process
that runs documents: forked workers, Airflow task processes, Celery workers. Each process loads the
plugins once, when a hook is first called.

A foundation module: it imports nothing of the library but :mod:`digitize.errors` and
:mod:`digitize.pluginspec`. A package that ships a default implementation registers it here
(:func:`register_builtin`: the OCR package registers Tesseract when imported), so imports keep
pointing down.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
from pathlib import Path
from types import ModuleType

import pluggy

from digitize import pluginspec
from digitize.errors import ConfigurationError

PLUGINS_SETTING = "DIGITIZE_PLUGINS"
_HINT = ("Set DIGITIZE_PLUGINS to comma-separated importable module names or paths to .py files whose "
         "functions carry digitize.pluginspec.hookimpl (README, Configuration), or unset it.")

_lock = threading.RLock()  # re-entrant: loading a plugin may import a package that registers a built-in
_managers: dict[str, pluggy.PluginManager] = {}
"""One manager per value of the setting: a process keeps one; a test that changes it gets what it names."""
_builtins: dict[str, object] = {}
_in_process: list[object] = []


def plugin_manager() -> pluggy.PluginManager:
    """This process's manager for the current ``DIGITIZE_PLUGINS``, built on first use and then kept.

    Built-ins are registered first, then the plugins the setting names, then those registered in-process;
    pluggy asks the last registered first. An unknown module or path is a :class:`ConfigurationError`.
    """
    value = os.environ.get(PLUGINS_SETTING, "")
    manager = _managers.get(value)
    if manager is None:
        with _lock:
            manager = _managers.get(value)
            if manager is None:
                manager = _managers[value] = _build(value)
    return manager


def register_builtin(plugin: object, name: str) -> None:
    """Register a package's default implementation in every manager, present and future (once per name)."""
    with _lock:
        if name in _builtins:
            return
        _builtins[name] = plugin
        for manager in _managers.values():
            manager.register(plugin, name=name)


def register_plugin(plugin: object) -> None:
    """Register a plugin object in this process only (tests), in every manager, ahead of the others."""
    with _lock:
        _in_process.append(plugin)
        for manager in _managers.values():
            _register(manager, plugin, repr(plugin))


def unregister_plugin(plugin: object) -> None:
    """Undo :func:`register_plugin`."""
    with _lock:
        _in_process.remove(plugin)
        for manager in _managers.values():
            manager.unregister(plugin)


def _build(value: str) -> pluggy.PluginManager:
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    loaded = [(entry, _load(entry)) for entry in entries]  # first: importing one may register a built-in
    manager = pluggy.PluginManager(pluginspec.PROJECT)
    manager.add_hookspecs(pluginspec)
    for name, builtin in _builtins.items():
        manager.register(builtin, name=name)
    for entry, module in loaded:
        _register(manager, module, entry)
    for plugin in _in_process:
        _register(manager, plugin, repr(plugin))
    return manager


def _register(manager: pluggy.PluginManager, plugin: object, entry: str) -> None:
    """Register ``plugin`` (once); one that implements no hook, or a hook that does not exist, is a mistake."""
    if manager.is_registered(plugin):
        return
    try:
        manager.register(plugin)
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        if manager.is_registered(plugin):
            manager.unregister(plugin)
        raise ConfigurationError(f"{PLUGINS_SETTING}: plugin {entry!r} does not fit the hooks: {exc}",
                                 hint=_HINT) from exc
    if not manager.get_hookcallers(plugin):
        manager.unregister(plugin)
        raise ConfigurationError(f"{PLUGINS_SETTING}: plugin {entry!r} implements no digitize hook", hint=_HINT)


def _load(entry: str) -> ModuleType:
    """Import a plugin by module name, or execute a ``.py`` file as a module named after it (once per process)."""
    if entry.endswith(".py") or os.sep in entry:
        return _load_file(Path(entry))
    try:
        return importlib.import_module(entry)
    except Exception as exc:  # the plugin's own import failing is the same mistake, named the same way
        raise ConfigurationError(f"{PLUGINS_SETTING}: module {entry!r} cannot be imported ({exc})",
                                 hint=_HINT) from exc


def _load_file(path: Path) -> ModuleType:
    path = path.resolve()
    if not path.is_file():
        raise ConfigurationError(f"{PLUGINS_SETTING}: no plugin file {str(path)!r}", hint=_HINT)
    name = path.stem
    known = sys.modules.get(name)
    if known is not None:
        if getattr(known, "__file__", None) == str(path):
            return known
        raise ConfigurationError(f"{PLUGINS_SETTING}: plugin file {str(path)!r} is named like the loaded "
                                 f"module {name!r}", hint="Rename the plugin file.")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"{PLUGINS_SETTING}: {str(path)!r} is not a Python module", hint=_HINT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look their module up there
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigurationError(f"{PLUGINS_SETTING}: plugin file {str(path)!r} failed to load ({exc})",
                                 hint=_HINT) from exc
    return module
