"""Turn failures into one plain-words line on stderr and a documented exit code (no tracebacks)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from ppcmk.cli.exit_codes import CliError, ExitCode
from ppcmk.errors import ApprovalRejected, ConfigError, HoldActive, PpcmkError, SeparationOfDutyError

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
            error_console.print(f"[bold red]error:[/] {message}", highlight=False)
            raise typer.Exit(int(code)) from error

    return wrapper
