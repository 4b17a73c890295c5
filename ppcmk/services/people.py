"""People by name: what a person reads for a principal a run names (who requested it), e.g. 'Key Vault
Admin (kv-admin@contoso.example)'. Resolved through Graph once per run and principal, with the first
connection the run loaded; where Graph cannot say, the UPN or id as given stands."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

import httpx
from azure.core.exceptions import AzureError

from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import PpcmkError
from ppcmk.services.factory import ClientFactory


@dataclass
class _Directory:
    run_id: str
    connection: ConnectionSettings
    labels: dict[str, str] = field(default_factory=dict)


_directory: ContextVar[_Directory | None] = ContextVar("ppcmk_directory", default=None)


def _current_run() -> str:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return str(context.flow_run.id) if context is not None and context.flow_run is not None else ""


def use_directory(connection: ConnectionSettings) -> None:
    """Name people with `connection` for the rest of the current flow run, unless it already names
    them."""
    run_id, held = _current_run(), _directory.get()
    if held is None or held.run_id != run_id:
        _directory.set(_Directory(run_id, connection))


def person(who: str) -> str:
    """`who` (a UPN or object id) as a person reads it, looked up once per run; `who` itself outside a
    run that loaded a connection, or when the directory does not know them."""
    held = _directory.get()
    if not who or held is None or held.run_id != _current_run():
        return who
    if who not in held.labels:
        try:
            held.labels[who] = ClientFactory.for_settings(held.connection).graph().principal(who).label
        except (PpcmkError, AzureError, httpx.HTTPError):  # a name to read, never a reason to fail a run
            held.labels[who] = who
    return held.labels[who]
