"""Turn failures into one plain-words line on stderr and a documented exit code (no tracebacks)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from ppcmk.errors import ApprovalRejected, ConfigError, HoldActive, PpcmkError, SeparationOfDutyError
from ppcmk_cli.exit_codes import CliError, ExitCode

P = ParamSpec("P")
R = TypeVar("R")

error_console = Console(stderr=True)


def describe_validation_error(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or error.title
        problems.append(f"{field}: {item['msg']}")
    return "invalid input: " + "; ".join(problems)


def exit_code_for(error: Exception) -> tuple[ExitCode, str] | None:
    """The exit code and message for an expected failure; None for a bug (which keeps its traceback)."""
    if isinstance(error, CliError):
        return error.code, str(error)
    if isinstance(error, ConfigError):
        return ExitCode.USAGE, str(error)
    if isinstance(error, ValidationError):
        return ExitCode.USAGE, describe_validation_error(error)
    if isinstance(error, ApprovalRejected | SeparationOfDutyError | HoldActive):
        return ExitCode.BLOCKED, str(error)
    if isinstance(error, PpcmkError):
        return ExitCode.FAILED, str(error)
    return None


class _ExpectedFailureFilter(logging.Filter):
    """Drops the traceback Prefect logs for an expected failure, and the run's multi-line "Finished in state
    Failed(...)" that repeats it: the CLI prints the failure once, as one message."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, Exception) and exit_code_for(error) is not None:
            self.seen = True
            return False
        return not (self.seen and record.getMessage().startswith("Finished in state Failed"))


@contextmanager
def expected_failures_untraced() -> Iterator[None]:
    """Around a local flow run: the terminal shows the run's logs, but no traceback for an expected error."""
    console_handlers = [handler for name in ("prefect", "")
                        for handler in logging.getLogger(name).handlers
                        if isinstance(handler, logging.StreamHandler)]
    quiet = _ExpectedFailureFilter()
    for handler in console_handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in console_handlers:
            handler.removeFilter(quiet)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Decorate a CLI command so expected failures end with a message and an exit code, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as error:
            known = exit_code_for(error)
            if known is None:
                raise
            code, message = known
            # soft wrap: one line however narrow the terminal, so scripts and logs see the whole message
            error_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(int(code)) from error

    return wrapper
