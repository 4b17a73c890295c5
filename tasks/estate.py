"""The estate read as one task run (`ppcmk.watch.reading` reads it)."""

from __future__ import annotations

from ppcmk.cloud.parallel import DEFAULT_CONCURRENCY
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.safety.retry import cmk_task
from ppcmk.watch.estate import EstateFacts
from ppcmk.watch.reading import read_estate


@cmk_task(task_run_name="read-estate")
def read_estate_task(conn: ConnectionSettings, pp_admins: list[str] | None = None,
                     operations_of: list[str] | None = None,
                     concurrency: int = DEFAULT_CONCURRENCY) -> EstateFacts:
    """`read_estate` as one task run; `operations_of`: environment ids or names whose operations to read."""
    names = {n.lower() for n in operations_of or []}
    return read_estate(conn, pp_admins or [], lambda e: bool({e.id.lower(), e.label.lower()} & names),
                       concurrency)
