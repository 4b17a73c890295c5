"""Which runbooks a doctor error stops, and for what. An error about one environment stops only the
runbooks that would change that environment (the others, and the other environments, go on); one about a
vault, key or policy stops the runbooks that use that object. Warnings and infos stop nothing."""

from __future__ import annotations

from ppcmk.models.findings import Finding, Severity

# check id (or its family, ending in a dot) → what an error of it stops; the first match wins
STOPS: tuple[tuple[str, str], ...] = (
    ("env.locked", "all but unlock, here"),
    ("env.busy", "onboard, change_policy, migrate_byok, revert, unlock here until it ends"),
    ("env.", "onboard, change_policy, migrate_byok here"),
    ("provider.", "onboard, change_policy, migrate_byok"),
    ("rotation.", "rotate of this key"),
    ("vault.", "onboard, change_policy, rotate with a key here"),
    ("key.", "onboard, change_policy, rotate of this key"),
    ("access.admin_reader", "the hand-off of onboard, change_policy, migrate_byok"),
    ("policy.", "onboard, change_policy, migrate_byok, revert, lock, unlock of this policy"),
    ("access.", "onboard, change_policy, migrate_byok, unlock of this policy"),
)


def stops(finding: Finding) -> str:
    """The runbooks an error stops, in words; empty for a warning or an info."""
    if finding.severity != Severity.ERROR:
        return ""
    for check, stopped in STOPS:
        if finding.check == check or (check.endswith(".") and finding.check.startswith(check)):
            return stopped
    return "the runbooks that use this object"
