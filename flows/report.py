"""Report: the customer-managed key state of every environment, read-only.

One row per environment (type, geo, managed, policy, vault, key, key version, expiry, rotation policy, link
status, key managed by), published as a table artifact and written as CSV and JSON files. Policies and keys
are read through ARM (no data-plane access needed, not subject to the vault firewall), each once however
many environments share them.

The same flow answers "may I restore / copy environment X onto Y": the documentation allows a restore onto
the same environment or one encrypted with the same customer-managed key, a copy only onto another
environment encrypted with the same key; locked environments can be neither; a reset deletes the data and
backups and returns the environment to the Microsoft-managed key. `may_overwrite` is that rule on two rows.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal, cast

from azure.core.exceptions import AzureError
from prefect import flow, get_run_logger
from prefect.utilities.annotations import quote
from pydantic import BaseModel

from ppcmk.checks.byok import byok_note
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ConfigError, PpcmkError
from ppcmk.home import ppcmk_home
from ppcmk.models.arm_ids import parse_resource_id
from ppcmk.models.azure import KeyInfo, PolicyInfo, RotationPolicyInfo
from ppcmk.models.environments import Environment
from ppcmk.safety.plan import RunOutcome, publish_table
from ppcmk.safety.retry import cmk_task
from ppcmk.services.factory import ClientFactory
from ppcmk.services.key_vault import read_key_via_arm
from ppcmk.services.policies import policy_from_arm
from ppcmk.watch.drift import Drift
from ppcmk.watch.estate import EstateFacts
from ppcmk.watch.lock_rules import deleted_drifts
from ppcmk.watch.reading import environment_fact
from ppcmk_blocks import CmkConnection
from ppcmk_flows._watch_state import lock_facts, previous_state, state_key
from ppcmk_tasks.byok import platform_reverts
from ppcmk_tasks.environments import get_environments

PROCEDURE = "report"
Overwrite = Literal["restore", "copy"]
LOCKED_REASON = "locked"


class InventoryRow(BaseModel):
    environment_id: str
    name: str
    sku: str
    geo: str
    managed: bool
    state: str
    policy: str = ""
    vault: str = ""
    key: str = ""
    key_version: str = ""
    key_expires: str = ""
    rotation_policy: str = ""
    link_status: str = ""
    key_managed_by: str = ""
    note: str = ""

    @property
    def customer_key(self) -> str | None:
        """The vault/key this environment is encrypted with, when it is fully on a customer-managed key."""
        if self.link_status.lower() != "linked" or not self.vault or not self.key:
            return None
        return f"{self.vault}/{self.key}".lower()

    @property
    def locked(self) -> bool:
        return LOCKED_REASON in self.state.lower()


class OverwriteAnswer(BaseModel):
    operation: Overwrite
    source: str
    destination: str
    allowed: bool
    reason: str


class _Lookup:
    """Reads each policy and each key once; a read that fails becomes a note on the rows, not a crash."""

    def __init__(self, factory: ClientFactory) -> None:
        self.factory = factory
        self.policies: dict[str, PolicyInfo | str] = {}
        self.keys: dict[str, tuple[KeyInfo | None, RotationPolicyInfo] | str] = {}

    def policy(self, policy_id: str) -> PolicyInfo | str:
        if policy_id.lower() not in self.policies:
            try:
                rid = parse_resource_id(policy_id)
                raw = self.factory.powerplatform_mgmt().enterprise_policies.get(rid.name, rid.resource_group)
                self.policies[policy_id.lower()] = policy_from_arm(raw.as_dict())
            except (AzureError, PpcmkError, ValueError) as unreadable:
                self.policies[policy_id.lower()] = f"policy unreadable: {type(unreadable).__name__}"
        return self.policies[policy_id.lower()]

    def key(self, vault_id: str, name: str) -> tuple[KeyInfo | None, RotationPolicyInfo] | str:
        ref = f"{vault_id}/{name}".lower()
        if ref not in self.keys:
            try:
                self.keys[ref] = read_key_via_arm(self.factory, vault_id, name)
            except (AzureError, PpcmkError, ValueError) as unreadable:
                self.keys[ref] = f"key unreadable: {type(unreadable).__name__}"
        return self.keys[ref]


def inventory_row(env: Environment, lookup: _Lookup) -> InventoryRow:
    reason = env.runtime_reason if env.runtime_reason not in (None, "NotSpecified") else None
    row = InventoryRow(
        environment_id=env.id,
        name=env.display_name or "",
        sku=env.sku or "",
        geo=env.geo or "",
        managed=env.managed,
        state=f"{env.runtime_state or 'unknown'}" + (f" ({reason})" if reason else ""),
        link_status=(env.cmk.link_status or "") if env.cmk else "",
        key_managed_by=env.key_managed_by or "Microsoft",
    )
    if env.cmk is None or not env.cmk.policy_id:
        return row
    policy = lookup.policy(env.cmk.policy_id)
    if isinstance(policy, str):
        return row.model_copy(update={"policy": env.cmk.policy_id.rsplit("/", 1)[-1], "note": policy})
    row = row.model_copy(update={"policy": policy.name, "key": policy.key_name or ""})
    if not policy.key_vault_id or not policy.key_name:
        return row
    row = row.model_copy(update={"vault": policy.key_vault_id.rstrip("/").rsplit("/", 1)[-1]})
    found = lookup.key(policy.key_vault_id, policy.key_name)
    if isinstance(found, str):
        return row.model_copy(update={"note": found})
    key, rotation = found
    if key is None:
        return row.model_copy(update={"note": "the policy's key does not exist"})
    pinned = policy.key_version
    return row.model_copy(
        update={
            "key_version": pinned or key.version,
            "key_expires": key.expires_on.isoformat() if key.expires_on and not pinned else "",
            "rotation_policy": rotation.text,
            "note": f"pinned to version {pinned}: does not follow rotation" if pinned else "",
        }
    )


@cmk_task(task_run_name="inventory")
def build_inventory(conn: ConnectionSettings, environments: list[Environment]) -> list[InventoryRow]:
    """Each environment with its key chain, reading each policy and each key once, and what BYOK's end of
    support means for it; then each environment a lock cost (locked when watch last saw it, or in ppcmk's
    lock record, and gone now)."""
    factory = ClientFactory.for_settings(conn)
    lookup, reverted = _Lookup(factory), platform_reverts(factory, environments)
    rows = [with_byok_note(inventory_row(env, lookup), env, reverted.get(env.id)) for env in environments]
    estate = EstateFacts(now=factory.now(), environments=[environment_fact(e) for e in environments],
                         locks=lock_facts())
    return rows + [lost_row(d) for d in deleted_drifts(estate, previous_state(state_key(conn)))]


def with_byok_note(row: InventoryRow, env: Environment, reverted: datetime | None) -> InventoryRow:
    note = byok_note(env, reverted)
    return row.model_copy(update={"note": "; ".join(n for n in (row.note, note) if n)}) if note else row


def lost_row(deleted: Drift) -> InventoryRow:
    """An environment the service deleted at the end of its lock countdown (or that disappeared locked)."""
    return InventoryRow(environment_id=deleted.object_id, name=deleted.object, sku="", geo="", managed=False,
                        state=f"Deleted (was locked; gone since {deleted.since:%Y-%m-%d %H:%M})"
                        if deleted.since else "Deleted (was locked)", note=deleted.message)


def find_row(rows: Sequence[InventoryRow], wanted: str, field: str) -> InventoryRow:
    for row in rows:
        if wanted.lower() in (row.environment_id.lower(), row.name.lower()):
            return row
    raise ConfigError(field, f"no environment {wanted!r} is visible", "use an id or name from the report")


def may_overwrite(source: InventoryRow, destination: InventoryRow, operation: Overwrite) -> OverwriteAnswer:
    """Whether `destination` may be overwritten with `source`'s data by a restore or a copy."""

    def answer(allowed: bool, reason: str) -> OverwriteAnswer:
        return OverwriteAnswer(operation=operation, source=source.environment_id,
                               destination=destination.environment_id, allowed=allowed, reason=reason)

    same = source.environment_id.lower() == destination.environment_id.lower()
    if source.locked or destination.locked:
        return answer(False, "a locked environment can be neither restored nor copied; unlock it first")
    if same:
        return answer(operation == "restore", "a restore onto the environment the backup came from is allowed"
                      if operation == "restore" else "a copy needs another environment as destination")
    if source.customer_key is None and destination.customer_key is None:
        if source.link_status or destination.link_status:
            return answer(False, "an encryption link is not complete (status "
                          f"{source.link_status or destination.link_status}); wait for it or re-run the link")
        return answer(True, "both environments use the Microsoft-managed key")
    if source.customer_key == destination.customer_key:
        return answer(True, f"both are encrypted with the same customer-managed key ({source.vault}/"
                      f"{source.key})")
    have = (source.customer_key or "Microsoft-managed", destination.customer_key or "Microsoft-managed")
    return answer(False, "the destination must be encrypted with the same customer-managed key as the source "
                  f"({have[0]} vs {have[1]}); link it to a policy using that key first. Note: a reset "
                  "deletes the data and backups and returns an environment to the Microsoft-managed key")


def report_directory(output_dir: str | None) -> Path:
    """Absolute, and by default under $PPCMK_HOME: a served run's working directory is no place for files."""
    return (Path(output_dir).expanduser() if output_dir else ppcmk_home() / "reports").resolve()


def write_files(rows: Sequence[InventoryRow], output_dir: str | None) -> tuple[Path, Path]:
    directory = report_directory(output_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as unwritable:
        raise ConfigError("output_dir", f"cannot create {directory}: {unwritable}",
                          "name a writable directory") from None
    csv_path, json_path = directory / "cmk-inventory.csv", directory / "cmk-inventory.json"
    fields = list(InventoryRow.model_fields)
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(row.model_dump() for row in rows)
    json_path.write_text(json.dumps([row.model_dump() for row in rows], indent=2), encoding="utf-8")
    return csv_path, json_path


@flow(name="report")
def report(
    connection: str,
    output_dir: str | None = None,
    overwrite_source: str | None = None,
    overwrite_destination: str | None = None,
    overwrite_operation: Overwrite = "copy",
) -> RunOutcome:
    """Inventory every environment the connection sees: policy, vault, key, version, expiry, link status.
    Read-only. Optionally answers whether a restore or copy between two environments is allowed.

    Args:
        connection: CmkConnection block with the Power Platform admin role or a registered management app
            (and Reader on the policies for the key columns), e.g. runbook; in the sandbox sandbox-runbook.
        output_dir: Directory for cmk-inventory.csv and .json; empty: $PPCMK_HOME/reports of the process
            that runs the flow (the run's log names the absolute path).
        overwrite_source: Environment (id or name) a restore or copy would read from, e.g. Contoso
            Production; give overwrite_destination too.
        overwrite_destination: Environment (id or name) a restore or copy would overwrite, e.g. Contoso
            Sandbox.
        overwrite_operation: restore (a backup onto another environment) or copy (environment to
            environment).
    """
    if (overwrite_source is None) != (overwrite_destination is None):
        raise ConfigError("overwrite_source / overwrite_destination", "only one of the two is given",
                          "give both environments (ids or names), or neither")
    conn = CmkConnection.named(connection).settings()
    # quote: Prefect would otherwise walk every environment twice, looking for futures in the task's input;
    # it unwraps the quote before the task runs, so the task still receives the list
    rows = build_inventory(conn, cast(list[Environment], quote(get_environments(conn))))
    answer = None
    if overwrite_source is not None and overwrite_destination is not None:
        answer = may_overwrite(find_row(rows, overwrite_source, "overwrite_source"),
                               find_row(rows, overwrite_destination, "overwrite_destination"),
                               overwrite_operation)
    table = [row.model_dump() for row in rows]
    publish_table(table, PROCEDURE, "inventory", description=f"CMK state of {len(rows)} environment(s)")
    csv_path, json_path = write_files(rows, output_dir)
    message = f"{len(rows)} environment(s); files {csv_path} and {json_path}"
    if answer is not None:
        verdict = "ALLOWED" if answer.allowed else "NOT allowed"
        message += f". {answer.operation} {answer.source} → {answer.destination}: {verdict} ({answer.reason})"
    get_run_logger().info(message)
    return RunOutcome(procedure=PROCEDURE, status="completed", plan_hash="", message=message, rows=table)
