"""Evidence: one pack an auditor can keep, for a period and a scope. Read-only.

The pack (`ppcmk.evidence`) is a self-contained HTML page with the pictures (each key's and environment's
timeline, coverage over time), the same content as JSON, the page printed to PDF, and a manifest with each
file's SHA-256: every change of the period from the audit chain with its requester, approvers and their
proof, plan hash and outcome; the chain's verification and the hash of its last entry; the controls as read
now with their evidence; who holds which role on the vaults and policies; the drift findings open in the
period; each environment's pickup of each new key version. Served monthly and on demand; the run publishes
a link to the pack and a summary table.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact

from ppcmk.evidence.model import Scope
from ppcmk.safety.plan import artifact_key, publish_table
from ppcmk_flows._run_form import run_form
from ppcmk_flows._runbook import load_connection
from ppcmk_tasks.evidence import EvidenceResult, evidence_pack_task

PROCEDURE = "evidence"


@flow(name="evidence")
@run_form
def evidence(
    connection: str,
    days: int = 365,
    policy: str | None = None,
    environments: list[str] | None = None,
    output_dir: str | None = None,
) -> EvidenceResult:
    """Write one evidence pack (HTML, JSON, PDF, manifest) for the period and scope. Read-only.

    Args:
        connection: CmkConnection block of a reader: Power Platform admin role or registered management app,
            Reader on the vaults and policies, role assignments and the directory readable, e.g. runbook; in
            the sandbox sandbox-runbook.
        days: The period: this many days up to now on the cloud's clock.
        policy: Only this enterprise policy (by name), its key and the environments it had; empty: the
            whole tenant.
        environments: Only these environments (ids or names), e.g. ["Finance on CMK"]; empty: the whole
            tenant.
        output_dir: Directory for the pack; empty: $PPCMK_HOME/evidence/<date>-<scope> of the process that
            runs the flow (the run's log and artifact name it).
    """
    conn = load_connection(connection)
    scope = Scope(policy=policy, environments=environments or [])
    result = evidence_pack_task(conn, scope, days, output_dir)
    page = Path(result.directory) / "evidence.html"
    create_link_artifact(link=page.as_uri(), link_text=f"evidence pack: {page}",
                         key=artifact_key(PROCEDURE, "pack"),
                         description=f"Evidence pack for {scope.label}, {days} days")
    publish_table(result.rows(), PROCEDURE, "summary", description=f"Evidence pack for {scope.label}")
    get_run_logger().info("Evidence pack for %s in %s: %d change(s), audit chain %s", scope.label,
                          result.directory, result.changes, "intact" if result.chain_intact else "BROKEN")
    return result
