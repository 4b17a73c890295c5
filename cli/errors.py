"""Every failure of a command ends as one plain-words line on stderr and a documented exit code: a
mistake on the command line, an expected failure (bad configuration, a refusal, a service error) and a
bug alike. The traceback is shown only to whoever asks for it (`ppcmk --debug ...` or PPCMK_DEBUG=1)."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from ppcmk.cloud.certificates import SOME_TRUST, certificate_error, untrusted
from ppcmk.errors import (
    ApprovalRejected,
    ConfigError,
    HoldActive,
    PpcmkError,
    SeparationOfDutyError,
    UntrustedCertificate,
)
from ppcmk_cli.exit_codes import CliError, ExitCode

DEBUG_SETTING = "PPCMK_DEBUG"
ASK_FOR_THE_TRACEBACK = f"run it again with --debug (or {DEBUG_SETTING}=1) for the traceback"
# Prefect's queue services warn while they flush at exit ("EventsWorker - Still processing items"): noise
# after a command that has already said how it ended; what they send is still sent.
FLUSHING_SERVICES = ("EventsWorker", "APILogWorker")

error_console = Console(stderr=True)


def debugging() -> bool:
    return os.environ.get(DEBUG_SETTING, "").strip().lower() not in ("", "0", "false", "no")


def describe_validation_error(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or error.title
        problems.append(f"{field}: {item['msg']}")
    return "invalid input: " + "; ".join(problems)


def exit_code_for(error: BaseException) -> tuple[ExitCode, str] | None:
    """The exit code and message for an expected failure; None for a bug."""
    if isinstance(error, CliError):
        return error.code, str(error)
    if isinstance(error, ConfigError | UntrustedCertificate):
        return ExitCode.USAGE, str(error)
    if (bad_certificate := certificate_error(error)) is not None:  # an SDK's, with no host named
        return ExitCode.USAGE, str(untrusted(bad_certificate, "a service", SOME_TRUST))
    if isinstance(error, ValidationError):
        return ExitCode.USAGE, describe_validation_error(error)
    if isinstance(error, ApprovalRejected):
        return ExitCode.REJECTED, str(error)
    if isinstance(error, SeparationOfDutyError | HoldActive):
        return ExitCode.BLOCKED, str(error)
    if isinstance(error, PpcmkError):
        return ExitCode.FAILED, str(error)
    return None


def say_error(message: str) -> None:
    # soft wrap: one line however narrow the terminal, so scripts and logs see the whole message
    line = Text.assemble(("error:", "bold red"), " ", message)
    error_console.print(line, highlight=False, soft_wrap=True)


def command_line_mistake(error: typer.TyperException) -> int:
    """An unknown option, a bad value, a missing argument: one line naming it, exit 2. A group called
    without a command (`ppcmk setup`) has shown its help already (making that error printed it)."""
    if type(error).__name__ == "NoArgsIsHelpError":
        return int(ExitCode.OK)
    context = getattr(error, "ctx", None)
    command = context.command_path if context is not None else "ppcmk"
    say_error(f"{error.format_message().rstrip('.')}. Fix: see `{command} --help`")
    return error.exit_code


def ended(error: BaseException) -> int:
    """Say how a command ended on `error`; the exit code."""
    if debugging():
        traceback.print_exception(error, file=sys.stderr)
    if isinstance(error, typer.TyperException):
        return command_line_mistake(error)
    if isinstance(error, typer.Abort):
        say_error("interrupted; whatever ran before stays as it was")
        return 130
    known = exit_code_for(error)
    if known is not None:
        code, message = known
        say_error(message)
        return int(code)
    first_line = (str(error).strip().splitlines() or [""])[0][:300]
    say_error(f"unexpected {type(error).__name__}: {first_line}; this is a bug in ppcmk: "
              f"{ASK_FOR_THE_TRACEBACK} and report it")
    return int(ExitCode.FAILED)


class OneLineErrors(TyperGroup):
    """The command group every `ppcmk` command runs under: how a command ends is decided here, once."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        for name in FLUSHING_SERVICES:
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
        except Exception as error:  # every failure: one line and its documented exit code
            code = ended(error)
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


class _RunLogsUntraced(logging.Filter):
    """Drops what a local flow run logs with a traceback, and its multi-line "Finished in state
    Failed(...)" that repeats it: the command says once, in one line, how the run ended."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            self.seen = True
            return False
        return not (self.seen and record.getMessage().startswith("Finished in state Failed"))


@contextmanager
def run_logs_untraced() -> Iterator[None]:
    """Around a local flow run: the terminal shows the run's logs without tracebacks (unless
    debugging)."""
    if debugging():
        yield
        return
    console_handlers = [handler for name in ("prefect", "")
                        for handler in logging.getLogger(name).handlers
                        if isinstance(handler, logging.StreamHandler)]
    quiet = _RunLogsUntraced()
    for handler in console_handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in console_handlers:
            handler.removeFilter(quiet)
