"""The read-only runbooks the CLI runs as local flow runs (`ppcmk report`, `ppcmk watch`): the connection
they read with, the run and its result."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from prefect.states import State

from ppcmk.errors import ConfigError
from ppcmk.safety.validation import check_parameters
from ppcmk_cli.errors import exit_code_for, run_logs_untraced
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.prefect_api import using_prefect_api
from ppcmk_cli.profile import load_profile
from ppcmk_cli.sandbox_blocks import save_sandbox_connection

# The sandbox persona that reads everything: Power Platform admin management app and Owner in Azure.
SANDBOX_READER = ("runbook", "sandbox-runbook")

T = TypeVar("T")


def reader_block(connection: str | None) -> str:
    """The CmkConnection block to read with: the one named (it must exist), else the running sandbox's
    runbook identity (saved as a block for the run). Needs the Prefect API set (`using_prefect_api`)."""
    if connection is not None:
        from ppcmk_blocks import CmkConnection
        from ppcmk_cli.blocks import existing_block

        existing_block(CmkConnection, connection, "--connection")
        return connection
    persona, block_name = SANDBOX_READER
    return save_sandbox_connection(load_profile(), persona, block_name)


def run_read_only(runbook: str, connection: str | None, result_type: type[T], options: dict[str, str],
                  **parameters: Any) -> T:
    """A read-only runbook as a local run on the Prefect API `ppcmk serve` published (or the configured
    one); its result. A parameter it refuses is named by the command's option for it (`options`:
    parameter → option)."""
    from ppcmk_deployments.catalog import RUNBOOKS

    flow = RUNBOOKS[runbook].load()
    try:
        check_parameters(**parameters)
        with using_prefect_api():
            block = reader_block(connection)
            with run_logs_untraced():
                state = cast(State[Any], flow(connection=block, return_state=True, **parameters))
            return result_of(state, runbook, result_type)
    except ConfigError as bad:
        if bad.field not in options:
            raise
        option = options[bad.field]
        fix = bad.fix.replace(bad.field, option)
        raise CliError(f"{option}: {bad.problem}. Fix: {fix}", ExitCode.USAGE) from None


def failure_of(state: State[Any]) -> Exception | None:
    """The exception a failed run raised, when it is one the CLI reports as a line with its own exit
    code."""
    try:
        state.result(raise_on_failure=True)
    except Exception as error:  # whatever the flow raised: only the expected ones are returned
        return error if exit_code_for(error) is not None else None
    return None


def result_of(state: State[Any], runbook: str, result_type: type[T]) -> T:
    """A completed run's result; any other end is the command's failure: the run's own error when it is
    an expected one (its exit code), else how the run ended."""
    if not state.is_completed():
        failure = failure_of(state)
        if failure is not None:
            raise failure
        raise CliError(f"the {runbook} run ended {state.name}: {state.message or ''}", ExitCode.FAILED)
    result: T = state.result()
    return result
