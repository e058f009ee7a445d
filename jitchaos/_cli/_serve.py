"""Serving until a signal: the event loop the long-running commands (idp, proxy) run on."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any


def freeze_survivors() -> Callable[[], None]:
    """Freeze what survives each full collection, for a server process that runs for days.

    The ledger keeps every grant, so the heap grows with the traffic, and CPython's full
    collections walk all of it: behind 90k tokens one paused the proxy for 300 ms, and the pause
    grows with the run. What a full collection leaves is, almost all of it, the ledger and the
    other state the process keeps to its end; frozen, later collections walk only what came
    after (pauses stay near 20 ms). Garbage cycles are collected before each freeze; the cost
    is that a cycle alive at a freeze and dropped later is never collected (a request in
    flight), against the ledger's 1-2 KB per token. Python 3.14's incremental collector
    bounds its pauses itself and reports no generation 2 collections: there only what is
    loaded at the start is frozen. Returns the uninstaller."""

    def after(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            gc.freeze()

    gc.callbacks.append(after)
    # What is loaded by now (modules, keys, a schedule of tens of thousands of entries) goes
    # the same way, its garbage collected first: walking a 24k-entry schedule on every full
    # collection cost about 10 us per token request.
    gc.collect()
    return lambda: gc.callbacks.remove(after)


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop where it is installed (the standalone proxy's hot path), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows, or installed without it
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
