"""Independent reads on a bounded thread pool: a tenant's many policies, vaults and environments read at
once, each failure kept as that item's result."""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from azure.core.exceptions import AzureError

from ppcmk.errors import PpcmkError

# Reads in flight at once; the services throttle per caller (429 + Retry-After, which the transports honour).
DEFAULT_CONCURRENCY = int(os.environ.get("PPCMK_READ_CONCURRENCY", "16"))
READ_ERRORS = (PpcmkError, AzureError, ValueError)

Item = TypeVar("Item")
Result = TypeVar("Result")


def bounded_map(fn: Callable[[Item], Result], items: Iterable[Item],
                concurrency: int = DEFAULT_CONCURRENCY) -> list[Result | BaseException]:
    """`fn` over `items` on at most `concurrency` threads, in order; an item's exception is its result.
    Each call runs in a copy of the caller's context (request-id collection, the Prefect run context)."""
    work = list(items)
    if concurrency <= 1 or len(work) <= 1:
        return [_call(fn, item) for item in work]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(work)), thread_name_prefix="ppcmk-read") as pool:
        futures = [pool.submit(contextvars.copy_context().run, _call, fn, item) for item in work]
        return [future.result() for future in futures]


def _call(fn: Callable[[Item], Result], item: Item) -> Result | BaseException:
    try:
        return fn(item)
    except READ_ERRORS as failed:
        return failed


def summary(error: BaseException) -> str:
    """The first line of an error (the SDK's messages run over several lines)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
