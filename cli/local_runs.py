"""The read-only runbooks the CLI runs as local flow runs (`ppcmk report`, `ppcmk watch`): the connection
they read with and the result of their run."""

from __future__ import annotations

from typing import Any, TypeVar

from prefect.states import State

from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.profile import load_profile
from ppcmk_cli.sandbox_blocks import save_sandbox_connection

# The sandbox persona that reads everything: Power Platform admin management app and Owner in Azure.
SANDBOX_READER = ("runbook", "sandbox-runbook")

T = TypeVar("T")


def reader_block(connection: str | None) -> str:
    """The CmkConnection block to read with: the one named, else the running sandbox's runbook identity
    (saved as a block for the run)."""
    if connection is not None:
        return connection
    persona, block_name = SANDBOX_READER
    return save_sandbox_connection(load_profile(), persona, block_name)


def result_of(state: State[Any], runbook: str, result_type: type[T]) -> T:
    """A completed run's result; any other end is the command's failure, naming how the run ended."""
    if not state.is_completed():
        raise CliError(f"the {runbook} run ended {state.name}: {state.message or ''}", ExitCode.FAILED)
    result: T = state.result()
    return result
