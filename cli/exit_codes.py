"""Exit codes that scripts can rely on; documented in the README and in `ppcmk --help`."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    # doctor/report found problems, a flow run failed, or a service answered with an error
    FAILED = 1
    # bad command line or bad configuration (the message names the field and the fix)
    USAGE = 2
    # blocked: an answer refused (separation of duty, no Reader, wrong confirmation, another plan), an
    # approval expired, a retention hold, or Prefect refused to resume a run; never a rejection (that is
    # 5)
    BLOCKED = 3
    # something the command needs is not running: no sandbox profile, Prefect API unreachable
    UNAVAILABLE = 4
    # the plan was rejected (`ppcmk approve --reject`, or a run that ended Rejected); nothing was changed
    REJECTED = 5


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 findings, failed run or service error; 2 usage or configuration error; "
    "3 blocked (an answer refused, an approval expired, a retention hold); "
    "4 sandbox or Prefect API not reachable; 5 the plan was rejected (nothing changed)."
)


class CliError(Exception):
    """An error the CLI reports in plain words with a specific exit code (no traceback)."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.code = code
