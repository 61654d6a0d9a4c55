"""Import function_app.py and index it once, refusing what the Python worker refuses.

The worker finds the single FunctionRegister in the module, calls get_functions() once and checks that every
Python parameter matches a binding name; devhost does the same so an app that starts here also loads in Azure.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
from azure.functions.decorators.function_app import Function


class IndexingError(Exception):
    """The app cannot be loaded; the message says what to change."""


@dataclass
class FunctionInfo:
    """One indexed function: its name, kind and the bindings the worker would send to the host."""

    name: str
    kind: str  # "orchestrator", "activity", "entity", "http" or "other"
    bindings: list[dict[str, Any]]
    trigger: dict[str, Any]
    callable: Callable[..., Any]  # the user's function (for a client function, the SDK's wrapper of it)
    is_async: bool = False
    trigger_param: str = ""
    wants_context: bool = False


@dataclass
class FunctionIndex:
    """Every function of the app, keyed the way the host looks them up."""

    all: dict[str, FunctionInfo] = field(default_factory=dict)
    orchestrators: dict[str, FunctionInfo] = field(default_factory=dict)
    activities: dict[str, FunctionInfo] = field(default_factory=dict)
    http: list[FunctionInfo] = field(default_factory=list)


def load_app_module(app_dir: Path, module_name: str = "function_app") -> ModuleType:
    """Import the app's entry module with the app directory first on sys.path, as the worker does."""
    app_path = str(app_dir.resolve())
    if app_path in sys.path:
        sys.path.remove(app_path)
    sys.path.insert(0, app_path)
    if not (app_dir / f"{module_name}.py").exists():
        raise IndexingError(f"{app_dir / (module_name + '.py')} not found: devhost needs the app's {module_name}.py")
    return importlib.import_module(module_name)


def find_register(module: ModuleType) -> func.FunctionRegister:
    """Return the module's single FunctionRegister (df.DFApp / func.FunctionApp)."""
    registers = [(name, value) for name, value in vars(module).items() if isinstance(value, func.FunctionRegister)]
    if not registers:
        raise IndexingError(
            f"{module.__name__}.py defines no FunctionApp: create exactly one `app = df.DFApp(...)` "
            "(or func.FunctionApp) at module level"
        )
    if len(registers) > 1:
        names = ", ".join(name for name, _ in registers)
        raise IndexingError(
            f"{module.__name__}.py defines more than one FunctionApp ({names}); the Python worker refuses "
            "this. Keep one app object and move the other functions into a Blueprint registered with "
            "app.register_functions(bp)"
        )
    return registers[0][1]


def _raw_bindings(fn: Any) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in fn.get_raw_bindings()]


def _check_parameters(name: str, fn: Any, bindings: list[dict[str, Any]]) -> bool:
    """The worker's check: Python parameters and binding names must be the same set.

    Returns whether the function takes an unbound `context` (func.Context).
    """
    user_function = fn.get_user_function()
    params = list(inspect.signature(user_function).parameters)
    bound = {b["name"] for b in bindings if b.get("name") != "$return"}
    wants_context = "context" in params and "context" not in bound
    declared = set(params) - ({"context"} if wants_context else set())
    only_python = sorted(declared - bound)
    only_bindings = sorted(bound - declared)
    if only_python or only_bindings:
        parts = []
        if only_python:
            parts.append(f"the following parameters are declared in Python but not as bindings: {only_python}")
        if only_bindings:
            parts.append(f"the following bindings are declared but not as Python parameters: {only_bindings}")
        hint = "Rename the parameter to the binding name"
        trigger_types = {b.get("type") for b in bindings}
        if "orchestrationTrigger" in trigger_types:
            hint = (
                "The orchestrator's parameter must be named `context`: use "
                '@app.orchestration_trigger(context_name="context") with `def orchestrator(context)`'
            )
        raise IndexingError(f"cannot load the {name} function: {'; '.join(parts)}. {hint}.")
    return wants_context


def _check_annotations(name: str, fn: Any, bindings: list[dict[str, Any]]) -> None:
    """The worker's annotation rules (azure_functions_worker functions.py, FunctionLoadError).

    A binding parameter's annotation must be a class or a ``typing`` generic such as
    ``typing.List[str]``; a union (``str | dict``) or a PEP 585 generic (``dict[str, Any]``) is
    refused. An explicit ``$return`` binding's return annotation must be a class.
    """
    user_function = fn.get_user_function()
    try:
        hints = typing.get_type_hints(user_function)
    except Exception as exc:  # the worker calls get_type_hints too and fails the same way
        raise IndexingError(f"cannot load the {name} function: its annotations cannot be resolved ({exc})") from exc
    bound = {b["name"] for b in bindings}
    for param, annotation in hints.items():
        if param in bound and not isinstance(annotation, (type, typing._GenericAlias)):  # type: ignore[attr-defined]
            raise IndexingError(
                f"cannot load the {name} function: binding {param} has invalid non-type annotation {annotation!r}. "
                "Annotate it with a plain class (e.g. `dict` instead of `dict[str, Any]`, `object` for a "
                "value of several types) or leave the annotation out"
            )
    if "$return" in bound and "return" in hints and not isinstance(hints["return"], type):
        raise IndexingError(
            f"cannot load the {name} function: it has invalid non-type return annotation {hints['return']!r}. "
            "Annotate the return with a plain class or leave it out"
        )


def _describe(fn: Function) -> FunctionInfo:
    name = fn.get_function_name() or fn.get_user_function().__name__  # the library falls back to it as well
    bindings = _raw_bindings(fn)
    trigger = next((b for b in bindings if str(b.get("type", "")).endswith("Trigger")), {})
    kind = {
        "orchestrationTrigger": "orchestrator",
        "activityTrigger": "activity",
        "entityTrigger": "entity",
        "httpTrigger": "http",
    }.get(trigger.get("type", ""), "other")
    wants_context = _check_parameters(name, fn, bindings)
    _check_annotations(name, fn, bindings)
    user_function = fn.get_user_function()
    info = FunctionInfo(
        name=name,
        kind=kind,
        bindings=bindings,
        trigger=trigger,
        callable=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        trigger_param=trigger.get("name", ""),
        wants_context=wants_context,
    )
    client = next((b for b in bindings if b.get("type") == "durableClient"), None)
    if client is not None:
        original = getattr(user_function, "client_function", user_function)
        if not inspect.iscoroutinefunction(original):
            raise IndexingError(
                f"cannot load the {name} function: a function with a durable client binding must be "
                f"`async def` (the durable client wrapper awaits it). Change `def {original.__name__}` to "
                f"`async def {original.__name__}` and await the client calls"
            )
    return info


def index_app(register: func.FunctionRegister) -> FunctionIndex:
    """Call get_functions() once and sort the functions by trigger, keyed by name or trigger alias."""
    try:
        functions = register.get_functions()
    except ValueError as exc:
        raise IndexingError(f"indexing failed: {exc}") from exc
    index = FunctionIndex()
    for fn in functions:
        info = _describe(fn)
        index.all[info.name] = info
        if info.kind == "orchestrator":
            index.orchestrators[info.trigger.get("orchestration") or info.name] = info
        elif info.kind == "activity":
            index.activities[info.trigger.get("activity") or info.name] = info
        elif info.kind == "http":
            index.http.append(info)
    return index


def load_and_index(app_dir: Path) -> FunctionIndex:
    """Import function_app.py from app_dir and index it."""
    try:
        module = load_app_module(app_dir)
    except IndexingError:
        raise
    except Exception as exc:
        raise IndexingError(f"importing function_app.py failed: {type(exc).__name__}: {exc}") from exc
    return index_app(find_register(module))
