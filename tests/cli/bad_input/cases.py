"""The catalogue: each case a command line as a person would type it, the exit code it ends with, and
what its message must name (the option, parameter, key, value or file). `{tmp}` in a command line is the
test's own folder, holding the files below; `{wrong_ca}` a connection block whose CA bundle is another
CA's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ppcmk_cli.exit_codes import ExitCode
from tests.support.scenario import UNKNOWN_ENVIRONMENT

USAGE = ExitCode.USAGE
DOCS = Path(__file__).resolve().parents[3] / "docs"
WRONG_CA_BLOCK = "bad-input-wrong-ca"


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    names: tuple[str, ...]  # what the error must say, each one
    code: ExitCode = USAGE


def case(name: str, command: str, *names: str, code: ExitCode = USAGE) -> Case:
    """A case from a command line split at "|" (so values may hold spaces)."""
    return Case(name, tuple(command.split("|")), names, code)


def files(folder: Path) -> None:
    """The files the cases name: broken, misspelt and wrong ones."""
    (folder / "broken.yaml").write_text("policies: [\n")
    (folder / "misspelt.yaml").write_text("policys: []\n")
    (folder / "broken.json").write_text("{not json")
    (folder / "one-key-wrong.yaml").write_text("connection: {}\n")
    blocks = (DOCS / "first-tenant-blocks.yaml").read_text()
    tenant = "c0ffee00-1111-4222-8333-444455556666"
    (folder / "bad-tenant.yaml").write_text(blocks.replace(tenant, "contoso", 1))


SELECTOR = '{"environment_ids": ["Contoso Production"]}'
COMMAND_LINES = [
    case("doctor unknown option", "doctor|--bogus", "--bogus"),
    case("doctor connection without target", "doctor|--connection|sandbox-runbook", "--target"),
    case("doctor missing block", "doctor|--connection|nope|--target|sandbox-target",
         "--connection nope"),
    case("doctor environment neither id nor name", "doctor|--environment|Contoso Nowhere",
         "--environment Contoso Nowhere"),
    case("doctor unknown pp-admin", "doctor|--pp-admin|nobody@contoso.example", "--pp-admin",
         "nobody@contoso.example"),
    case("approvals unknown option", "approvals|--limit|5", "--limit"),
    case("approve with a connection block (a person signs in)", "approve|abcd1234|--connection|x",
         "--connection"),
    case("approve run id too short", "approve|zz", "RUN_ID", "'zz'"),
    case("approve prefix of no waiting run", "approve|abcd1234", "RUN_ID abcd1234"),
    case("approve negative wait", "approve|abcd1234|--wait|-1", "--wait"),
    case("report missing block", "report|--connection|no-such-block", "--connection no-such-block"),
    case("report unwritable out", "report|--out|/proc/no-such-folder", "--out", "/proc/no-such-folder"),
    case("report certificate of another CA", "report|--connection|{wrong_ca}", "TLS certificate",
         "not trusted by the CA bundle"),
    case("evidence negative days", "evidence|--days|-5", "--days", "-5"),
    case("evidence unknown policy", "evidence|--policy|ep-nowhere", "--policy", "ep-nowhere"),
    case("evidence verify without a pack", "evidence|--verify|{tmp}/nowhere", "--verify",
         "{tmp}/nowhere"),
    case("watch negative cadence", "watch|--rotation-cadence-days|-5", "--rotation-cadence-days"),
    case("watch broken desired state", "watch|--desired|{tmp}/broken.yaml", "{tmp}/broken.yaml",
         "not valid YAML"),
    case("watch misspelt desired key", "watch|--desired|{tmp}/misspelt.yaml", "policys", "no such key"),
    case("watch desired neither file nor block", "watch|--desired|no-such-thing", "--desired",
         "no-such-thing"),
    case("watch unknown pp-admin", "watch|--pp-admin|nobody@contoso.example", "--pp-admin"),
    case("watch missing block", "watch|--connection|nope", "--connection nope"),
    case("converge missing file", "converge|{tmp}/nope.yaml", "{tmp}/nope.yaml"),
    case("converge misspelt key", "converge|{tmp}/misspelt.yaml|--dry-run", "policys"),
    case("demo unknown option", "demo|--bogus", "--bogus"),
    case("serve port 0", "serve|--prefect-port|0", "--prefect-port"),
    case("serve negative clock speed", "serve|--clock-speed|-1", "--clock-speed"),
    case("serve notification without type", "serve|--notify|ops", "--notify ops", "TYPE/NAME"),
    case("sandbox up port out of range", "sandbox|up|--port|70000", "--port"),
    case("sandbox up unknown scenario", "sandbox|up|--scenario|nope", "--scenario", "'nope'"),
    case("sandbox up bad fleet size", "sandbox|up|--scenario|fleet:many", "--scenario fleet:many"),
    case("sandbox clock advance not a duration", "sandbox|clock|advance|soon", "DURATION", "'soon'"),
    case("sandbox faults add broken regex", "sandbox|faults|add|--path|(", "--path '('"),
    case("sandbox faults add probability 2", "sandbox|faults|add|--path|/x|--probability|2",
         "--probability"),
    case("sandbox faults add status 99", "sandbox|faults|add|--path|/x|--status|99", "--status"),
    case("runs unknown command", "runs|bogus", "bogus"),
    case("runs list limit 0", "runs|list|--limit|0", "--limit"),
    case("runs wake unknown option", "runs|wake|--all", "--all"),
    case("setup blocks without a source", "setup|blocks", "--file"),
    case("setup blocks broken JSON", "setup|blocks|--file|{tmp}/broken.json", "--file",
         "not valid JSON"),
    case("setup blocks missing file", "setup|blocks|--file|{tmp}/nope.yaml", "{tmp}/nope.yaml"),
    case("setup blocks unknown key", "setup|blocks|--file|{tmp}/one-key-wrong.yaml",
         "no such key connection"),
    case("setup blocks tenant not a GUID", "setup|blocks|--file|{tmp}/bad-tenant.yaml", "tenant_id",
         "'contoso'"),
    case("setup workers heartbeat 5", "setup|workers|--heartbeat-seconds|5", "--heartbeat-seconds"),
    case("setup workers block without type", "setup|workers|--results-block|noslash|--audit-block|a/b",
         "--results-block", "noslash"),
    case("setup automations block without type", "setup|automations|--block|ops", "--block ops"),
    case("setup automations ftp webhook", "setup|automations|--webhook-url|ftp://x", "--webhook-url"),
    case("audit show run id too short", "audit|show|--run|zz", "--run", "'zz'"),
    case("audit show run without value", "audit|show|--run", "--run"),
    case("audit verify unknown option", "audit|verify|--all", "--all"),
]

RUN_PARAMETERS = [
    case("run unknown runbook", "run|nosuchflow", "nosuchflow"),
    case("run onboard unknown parameter", "run|onboard|-p|bogus=1", "--param bogus"),
    case("run onboard parameter without value", "run|onboard|-p|nokey", "'nokey'", "name=value"),
    case("onboard selector unknown key", 'run|onboard|-p|selector={"envs": ["Contoso Production"]}',
         "selector", "no such key envs"),
    case("onboard selector broken JSON", "run|onboard|-p|selector={broken", "selector",
         "not valid JSON"),
    case("onboard selector a list", "run|onboard|-p|selector=[1]", "selector", "[1] is not an object"),
    case("onboard selector unknown environment id",
         f'run|onboard|--dry-run|-p|selector={{"environment_ids": ["{UNKNOWN_ENVIRONMENT}"]}}',
         "selector", UNKNOWN_ENVIRONMENT),
    case("onboard unknown pp_admin", "run|onboard|-p|pp_admin=nobody@contoso.example", "pp_admin",
         "nobody@contoso.example"),
    case("onboard missing target block", "run|onboard|-p|target=no-such-target",
         "target no-such-target"),
    case("onboard dry_run not a boolean", "run|onboard|-p|dry_run=maybe", "dry_run"),
    case("onboard waves a number", "run|onboard|-p|waves=5", "waves", "5 is not an object"),
    case("onboard poll not a number through the deployment",
         "run|onboard|--deployment|-p|approval_poll_s=often", "--param approval_poll_s", "not a number"),
    case("rotate negative interval", "run|rotate|-p|min_interval_hours=-1", "min_interval_hours"),
    case("rotate expiry before retention", "run|rotate|-p|set_policy=true|-p|expire_after_days=10",
         "expire_after_days"),
    case("change_policy bad key name", "run|change_policy|--dry-run|-p|new_key_name=bad key",
         "new_key_name", "'bad key'"),
    case("change_policy vault not an ARM id",
         "run|change_policy|--dry-run|-p|new_vault_id=not-an-arm-id", "new_vault_id"),
    case("revert missing connection block", "run|revert|-p|connection=no-such-block",
         "connection no-such-block"),
    case("revert selector geo a number", 'run|revert|-p|selector={"geo": 5}', "selector.geo"),
    case("migrate_byok waves unknown key", 'run|migrate_byok|-p|waves={"wave_size": 5}', "waves",
         "wave_size"),
    case("lock negative poll", "run|lock|-p|approval_poll_s=-1", "approval_poll_s"),
    case("unlock zero deadline", "run|unlock|-p|reenable_deadline_minutes=0",
         "reenable_deadline_minutes"),
    case("report one of two overwrite environments", "run|report|-p|overwrite_source=abc",
         "overwrite_source"),
    case("report has no dry run", "run|report|--dry-run", "--dry-run"),
    case("cleanup zero approval timeout", "run|cleanup|-p|approval_timeout_s=0", "approval_timeout_s"),
    case("cleanup unknown old policy", "run|cleanup|--dry-run|-p|old_policy=ep-old", "old_policy",
         "ep-old"),
    case("watch parameter negative cadence", "run|watch|-p|rotation_cadence_days=-5",
         "rotation_cadence_days"),
    case("watch parameter zero concurrency", "run|watch|-p|concurrency=0", "concurrency"),
    case("evidence parameter negative days", "run|evidence|-p|days=-5", "days"),
    case("evidence parameter unknown policy", "run|evidence|-p|policy=ep-nowhere", "policy",
         "ep-nowhere"),
]

CASES = COMMAND_LINES + RUN_PARAMETERS
