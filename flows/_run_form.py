"""The run form's help texts, written once: what each runbook parameter means.

Prefect reads a flow's parameter descriptions from the Args section of its docstring. A runbook's docstring
describes only its own parameters; `run_form` adds the texts below for the ones that mean the same in every
runbook, in the order the flow declares them (a parameter described nowhere is a mistake caught at import).
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])

SHARED_HELP = {
    "kv_connection": "CmkConnection block of the Key Vault admin, who creates the key, the enterprise policy"
                     " and the role assignments, e.g. kv-admin; in the sandbox sandbox-kv-admin.",
    "pp_connection": "CmkConnection block that reads the environments for the plan (read only), e.g. "
                     "pp-admin; in the sandbox sandbox-pp-admin.",
    "pp_admin": "UPN or object id of the Power Platform admin who gets Reader on the policy, approves the "
                "hand-off and runs the Power Platform half with the connection block they name, e.g. "
                "pp-admin@contoso.example (the sandbox's).",
    "requester": "Who asks for the change (UPN or object id); cannot approve it. Empty: the principal "
                 "kv_connection signs in as.",
    "enable_managed": "Turn on Managed Environments where it is off (CMK needs it).",
    "waves": "How the environments are split and paced: canary_skus go first, then wave_sizes; max_in_flight"
             " at a time; park_after_minutes before a deployment run parks during a long link.",
    "dry_run": "Plan and publish the plan only; change nothing.",
    "approval_timeout_s": "Seconds to wait for the approval before the run ends as not approved.",
    "approval_poll_s": "How often (seconds) a local run looks for the answer; deployment runs suspend.",
    "operation_deadline_days": "How long one environment's link may take before it counts as failed (the "
                               "service may take up to 4 days for large environments).",
    "max_link_attempts": "Link attempts per environment before it counts as failed.",
}

_WIDTH = 110
_ENTRY_START = re.compile(r"^    (?=\w+: )", re.MULTILINE)


def run_form(fn: F) -> F:
    """Complete the flow's Args section with SHARED_HELP for every parameter its docstring leaves out."""
    summary, _, own_args = inspect.cleandoc(fn.__doc__ or "").partition("\nArgs:\n")
    own = _entries(own_args)
    names = list(inspect.signature(fn).parameters)
    unknown = sorted(set(own) - set(names))
    undescribed = [name for name in names if name not in own and name not in SHARED_HELP]
    if unknown or undescribed:
        raise TypeError(f"{fn.__name__}: help for no such parameter {unknown}, none for {undescribed}")
    entries = [own.get(name) or _entry(name, SHARED_HELP[name]) for name in names]
    fn.__doc__ = summary.rstrip() + "\n\nArgs:\n" + "\n".join(entries)
    return fn


def _entries(args: str) -> dict[str, str]:
    """The Args section's entries by parameter name, each with its continuation lines."""
    chunks = (chunk.rstrip() for chunk in _ENTRY_START.split(args) if chunk.strip())
    return {chunk.split(":", 1)[0]: "    " + chunk for chunk in chunks}


def _entry(name: str, text: str) -> str:
    return textwrap.fill(f"{name}: {text}", _WIDTH, initial_indent="    ", subsequent_indent="        ",
                         break_long_words=False, break_on_hyphens=False)
