"""Every route dependency is a coroutine function: FastAPI runs a plain function dependency in a worker
thread, so each sync one costs a request a thread hop (a wait for a thread and for the GIL under load)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute


def dependencies(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """The callables of a dependant's dependencies, recursively (not the endpoint itself)."""
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from dependencies(sub)


def runs_on_the_loop(call: Callable[..., Any]) -> bool:
    """Whether FastAPI awaits ``call`` rather than running it in a thread: a coroutine or async generator
    function, or an object whose ``__call__`` is one (the security schemes)."""
    target = call if inspect.isroutine(call) else type(call).__call__
    return inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, inside included routers too (FastAPI 0.16x keeps those as wrappers of the router)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from api_routes(router.routes)


def test_no_route_has_a_sync_dependency(app: FastAPI) -> None:
    routes = list(api_routes(app.routes))
    assert any(route.path.endswith("/documents") for route in routes)
    sync = {
        f"{route.path}: {getattr(call, '__qualname__', call)}"
        for route in routes
        for call in dependencies(route.dependant)
        if not runs_on_the_loop(call)
    }
    assert not sync, sorted(sync)
