"""`ppcmk doctor`: every preflight check at once, as a table (or JSON), exit 1 when something blocks.

Without block names it checks the running sandbox as the runbook identity (which can read both Azure and
the Power Platform admin API) and scans every vault of the subscription, so every seeded problem shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

import typer
from azure.core.exceptions import AzureError
from rich.console import Console
from rich.markup import escape

from ppcmk.checks.blocking import stops
from ppcmk.cloud.settings import KEY_SIZES, ConnectionSettings, TargetSettings, load_settings
from ppcmk.models.arm_ids import parse_resource_id, short_id
from ppcmk.models.findings import DoctorReport, Severity
from ppcmk.services.factory import ClientFactory
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.profile import load_profile
from ppcmk_cli.sandbox_blocks import sandbox_connection_data, sandbox_target_data
from ppcmk_cli.tables import FittedTable

# The sandbox persona doctor reads as: Owner on the subscription and a registered admin management app.
SANDBOX_DOCTOR_PERSONA = "runbook"


@dataclass(frozen=True)
class DoctorInputs:
    connection: ConnectionSettings
    targets: list[TargetSettings]
    # where the inputs came from, for the heading: "sandbox at URL" or "blocks A, B"
    source: str
    scan_by_default: bool


def sandbox_inputs() -> DoctorInputs:
    profile = load_profile()
    connection = load_settings(ConnectionSettings, sandbox_connection_data(profile, SANDBOX_DOCTOR_PERSONA))
    target = load_settings(TargetSettings, sandbox_target_data(profile))
    return DoctorInputs(connection, [target], f"sandbox at {profile.url}", scan_by_default=True)


def block_inputs(connection_block: str, target_blocks: list[str]) -> DoctorInputs:
    """Load the named blocks from the Prefect API (the one `ppcmk serve` published, or $PREFECT_API_URL)."""
    from ppcmk_blocks import CmkConnection, CmkTarget
    from ppcmk_cli.blocks import existing_block
    from ppcmk_cli.prefect_api import prefect_api

    with prefect_api():
        connection = existing_block(CmkConnection, connection_block, "--connection").settings()
        targets = [existing_block(CmkTarget, name, "--target").settings() for name in target_blocks]
    return DoctorInputs(connection, targets, f"blocks {connection_block}, {', '.join(target_blocks)}",
                        scan_by_default=False)


def scanned_targets(connection: ConnectionSettings, primary: TargetSettings) -> Iterator[TargetSettings]:
    """Every key of every vault and managed HSM in the subscription, checked as a candidate CMK key against
    the primary target's policy (so policy findings are not repeated per key)."""
    mgmt = ClientFactory.for_settings(connection).keyvault_mgmt()
    collections = ((mgmt.vaults.list_by_subscription(), mgmt.keys.list),
                   (mgmt.managed_hsms.list_by_subscription(), mgmt.managed_hsm_keys.list))
    for vaults, list_keys in collections:
        for vault in vaults:
            vault_id = str(vault.id)
            group = parse_resource_id(vault_id).resource_group
            for key in list_keys(group, str(vault.name)):
                data = primary.model_dump() | {"vault_id": vault_id, "key_name": str(key.name)}
                kty, size = str(getattr(key.kty, "value", key.kty) or ""), key.key_size  # enum → wire
                if kty in KEY_SIZES and size in KEY_SIZES[kty]:  # judge the key as it is, not by the primary
                    data |= {"key_type": kty, "key_size": size}
                yield load_settings(TargetSettings, data)


def environment_ids(connection: ConnectionSettings, given: list[str]) -> list[str]:
    """`--environment` values as ids: an environment's id or display name as the connection sees it. An
    id the list lacks is kept (the doctor reports it as not visible); anything else is a usage error."""
    listed = ClientFactory.for_settings(connection).pp_admin().list_environments()
    known = {key.lower(): env.id for env in listed for key in (env.id, env.display_name or env.id)}
    ids = []
    for value in given:
        if value.lower() not in known:
            try:
                UUID(value)
            except ValueError:
                raise CliError(f"--environment {value}: neither an environment id (a GUID) nor the name "
                               "of an environment the connection sees; `ppcmk report` lists them",
                               ExitCode.USAGE) from None
        ids.append(known.get(value.lower(), value))
    return ids


# the columns of the findings table, and the order they are left out in when the terminal is narrow
FINDING_COLUMNS = ["severity", "object", "finding", "fix", "blocks", "check"]
FINDING_PRIORITY = ["severity", "object", "finding", "blocks", "fix", "check"]
SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def findings_table(report: DoctorReport, title: str) -> FittedTable:
    """Errors and warnings, one row each: the object by name, the fix, and which runbooks an error
    blocks. Infos (facts, nothing to fix) are `notes` below it."""
    rows = [[f"[{SEVERITY_STYLE[f.severity]}]{f.severity.value}[/]",
             escape(f.name or short_id(f.subject)), escape(short_id(f.message)), escape(short_id(f.fix)),
             escape(stops(f)), f.check]
            for f in report.findings if f.severity != Severity.INFO]
    return FittedTable(f"{title} ({report.summary()})", FINDING_COLUMNS, rows, FINDING_PRIORITY,
                       no_wrap=frozenset({"severity", "check"}), essential=4)


def notes(report: DoctorReport) -> list[str]:
    """The info findings, one line each."""
    return [f"info: {f.name or short_id(f.subject)}: {short_id(f.message)}"
            for f in report.by_severity(Severity.INFO)]


def verdict(report: DoctorReport) -> str:
    if report.ok:
        return f"{report.summary()}: [bold green]ready[/]"
    return (f"{report.summary()}: [bold red]each error blocks the runbooks in its blocks column[/], "
            "for its object only; fix it before running them (the other runbooks and objects are not "
            "blocked)")


def run_checks(inputs: DoctorInputs, environments: list[str] | None, pp_admin: str | None,
               scan: bool) -> DoctorReport:
    from ppcmk_tasks.doctor import doctor_report

    targets = list(inputs.targets)
    if scan:
        try:
            targets += list(scanned_targets(inputs.connection, targets[0]))
        except AzureError as error:
            raise CliError(f"--scan-vaults: could not list the subscription's vaults ({error}); give the "
                           "identity Reader on the subscription or pass --no-scan-vaults", ExitCode.FAILED
                           ) from error
    return doctor_report(inputs.connection, targets, environments, pp_admin)


def doctor(
    json_output: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    connection: Annotated[str | None, typer.Option(help="CmkConnection block to check with (default: the "
                                                        "running sandbox's runbook identity).")] = None,
    target: Annotated[list[str] | None, typer.Option(help="CmkTarget block (repeatable; the first one's "
                                                          "policy is checked against the environments).")]
    = None,
    environment: Annotated[list[str] | None, typer.Option(
        help="Only these environments, by id or name (repeatable; default: every one).")] = None,
    pp_admin: Annotated[str | None, typer.Option(help="UPN or object id of the Power Platform admin: checks "
                                                      "their Reader role on the policy.")] = None,
    scan_vaults: Annotated[bool | None, typer.Option(help="Also check every key of every vault in the "
                                                          "subscription (default: on for the sandbox).")]
    = None,
) -> None:
    """Check everything the runbooks need and list every problem with its fix (exit 1 on errors)."""
    if connection or target:
        if not (connection and target):
            missing = "--target" if connection else "--connection"
            raise CliError(f"{missing}: give both --connection and --target block names, or neither to "
                           "check the running sandbox", ExitCode.USAGE)
        inputs = block_inputs(connection, target)
    else:
        inputs = sandbox_inputs()
    if pp_admin:
        from ppcmk_tasks.access import known_principals

        known_principals("--pp-admin", inputs.connection, [pp_admin])
    scan = inputs.scan_by_default if scan_vaults is None else scan_vaults
    chosen = environment_ids(inputs.connection, environment) if environment else None
    report = run_checks(inputs, chosen, pp_admin, scan)
    if json_output:
        typer.echo(report.to_json())
    else:
        console = Console()  # made per call: it reads the terminal width (COLUMNS) of this invocation
        console.print(findings_table(report, f"ppcmk doctor · {inputs.source}"))
        for line in notes(report):
            console.print(line, style="dim", highlight=False, markup=False)
        console.print(verdict(report), highlight=False)
    raise typer.Exit(int(ExitCode.OK if report.ok else ExitCode.FAILED))
