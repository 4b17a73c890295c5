"""Where the audit chain is kept and how writers on many workers take turns extending it.

The store is a Prefect filesystem block, named the way Prefect names result storage
(`PPCMK_AUDIT_STORAGE=<block type slug>/<block name>`, e.g. `local-file-system/ppcmk-audit` on a shared
mount, or a remote-file-system / cloud storage block). Without the setting the chain is kept in a
LocalFileSystem at `$PPCMK_HOME/audit` (one machine: `ppcmk serve`, the demo, tests).

The turn-taking lock is the Prefect global concurrency limit `ppcmk-audit` (limit 1, created on first use),
held only for the few reads and writes of one append, so the holder's process is alive for the whole lease.
A turn is two calls (take a slot with a lease, release it): the lease outlives any append, so nothing renews
it, and a holder that dies frees the slot when its lease ends. Writers of one process (a run's waves are
threads) queue on a thread lock before asking the server.
Without a Prefect API (a CLI on a laptop) a LocalFileSystem store is locked with flock on its folder.
"""

from __future__ import annotations

import fcntl
import inspect
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import httpx
from prefect.filesystems import LocalFileSystem, WritableFileSystem
from prefect.utilities.asyncutils import run_coro_as_sync

from ppcmk.errors import ConfigError
from ppcmk.home import ppcmk_home

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

AUDIT_STORAGE_SETTING = "PPCMK_AUDIT_STORAGE"
AUDIT_LOCK = "ppcmk-audit"
LEASE_SECONDS = 60  # the server's minimum; an append takes milliseconds
# A taken slot is asked for again this soon (jittered), not after the server's Retry-After: the server guesses
# seconds from a default occupancy, and an append holds the slot for milliseconds.
TURN_RETRY_SECONDS = 0.05
_IN_PROCESS = threading.Lock()
STORAGE_FIX = (f"create a filesystem block every worker can reach and name it in {AUDIT_STORAGE_SETTING}, "
               f"e.g. `ppcmk setup workers --shared-dir /shared/ppcmk` then "
               f"{AUDIT_STORAGE_SETTING}=local-file-system/ppcmk-audit")


def settled(value: Any) -> Any:
    """Storage blocks are sync, async or both (Prefect dispatches by context); this code is sync."""
    return run_coro_as_sync(value) if inspect.iscoroutine(value) else value


def configured_storage() -> WritableFileSystem:
    """The block PPCMK_AUDIT_STORAGE names, else a LocalFileSystem at $PPCMK_HOME/audit."""
    reference = os.environ.get(AUDIT_STORAGE_SETTING, "").strip()
    if not reference:
        return LocalFileSystem(basepath=str(ppcmk_home() / "audit"))
    from prefect.blocks.core import Block

    try:
        block = settled(Block.load(reference))
    except Exception as failure:
        raise ConfigError(AUDIT_STORAGE_SETTING, f"block {reference!r} cannot be loaded ({failure})",
                          STORAGE_FIX) from None
    if not isinstance(block, WritableFileSystem):
        raise ConfigError(AUDIT_STORAGE_SETTING, f"block {reference!r} is a {type(block).__name__}, not a "
                          "writable filesystem block", STORAGE_FIX)
    return block


def describe(storage: WritableFileSystem) -> str:
    where = getattr(storage, "basepath", None)
    return f"{type(storage).__name__} {where}" if where else type(storage).__name__


def _missing(failure: Exception) -> bool:
    # LocalFileSystem says ValueError("Path ... does not exist."), fsspec-backed blocks FileNotFoundError
    return isinstance(failure, FileNotFoundError) or "does not exist" in str(failure)


class ChainStore:
    """JSON objects in one filesystem block, and the lock that serialises appends across workers."""

    def __init__(self, storage: WritableFileSystem | None = None) -> None:
        self.storage = storage or configured_storage()

    def read(self, path: str) -> dict[str, Any] | None:
        """The object at `path`, or None when there is none (any other failure is raised)."""
        try:
            content = cast(bytes, settled(self.storage.read_path(path)))
        except Exception as failure:
            if _missing(failure):
                return None
            raise
        return cast(dict[str, Any], json.loads(content)) if content.strip() else None

    def write(self, path: str, value: dict[str, Any]) -> None:
        settled(self.storage.write_path(path, json.dumps(value, sort_keys=True).encode()))

    @contextmanager
    def lock(self) -> Iterator[None]:
        with _IN_PROCESS, self._across_workers():
            yield

    @contextmanager
    def _across_workers(self) -> Iterator[None]:
        if _prefect_api():
            ensure_audit_limit()
            with _server_turn():
                yield
            return
        if not isinstance(self.storage, LocalFileSystem):
            raise ConfigError("PREFECT_API_URL", f"the audit store is a {type(self.storage).__name__}, which "
                              "only a Prefect server can lock for every worker",
                              "set PREFECT_API_URL to the server the workers use")
        folder = Path(self.storage.basepath or ".").expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _server_turn() -> Iterator[None]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        lease = _take_turn(client)
        try:
            yield
        finally:
            client.release_concurrency_slots_with_lease(lease)


def _take_turn(client: SyncPrefectClient) -> UUID:
    while True:
        try:
            taken = client.increment_concurrency_slots_with_lease([AUDIT_LOCK], 1, "concurrency",
                                                                  LEASE_SECONDS)
        except httpx.HTTPStatusError as busy:
            if busy.response.status_code != httpx.codes.LOCKED:
                raise
            time.sleep(TURN_RETRY_SECONDS * random.uniform(0.5, 1.5))
            continue
        granted = taken.json()
        if AUDIT_LOCK not in {limit["name"] for limit in granted["limits"]}:  # deleted since it was checked
            raise ConfigError(f"global concurrency limit {AUDIT_LOCK}", "it no longer exists, so nothing "
                              "serialises audit appends", f"prefect gcl create {AUDIT_LOCK} --limit 1")
        return UUID(granted["lease_id"])


def _prefect_api() -> bool:
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


@cache
def _limit_checked(api_url: str) -> None:
    """Create `ppcmk-audit` with limit 1 unless it exists; refuse one someone widened (it would not lock)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            existing = client.read_global_concurrency_limit_by_name(AUDIT_LOCK)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another worker created it meanwhile
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=AUDIT_LOCK, limit=1))
            return
    if existing.limit != 1 or not existing.active:
        raise ConfigError(f"global concurrency limit {AUDIT_LOCK}", f"limit {existing.limit}, active "
                          f"{existing.active}: it must be an active limit of 1 to serialise audit appends",
                          f"prefect gcl update {AUDIT_LOCK} --limit 1 --enable")


def ensure_audit_limit() -> None:
    from prefect.settings import PREFECT_API_URL

    _limit_checked(str(PREFECT_API_URL.value()))
