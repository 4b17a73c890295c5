"""The desired state: watch reports each difference, `ppcmk converge --dry-run` plans exactly the runs that
remove them (one per change of place and per key), and `ppcmk watch` exits 1 on error findings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ppcmk.errors import ConfigError
from ppcmk.watch.converge import plan_runs
from ppcmk.watch.desired import parse_desired_state
from ppcmk.watch.estate import EnvironmentFact, EstateFacts, PolicyFact
from ppcmk_cli import app
from ppcmk_cli.profile import save_profile
from tests.support.sandbox import connection, profile
from tests.support.scenario import DESIRED, FINANCE, PP_ADMIN, REQUESTER
from tests.support.scenario import PRODUCTION as CONTOSO_PRODUCTION
from tests.support.world import change, current_version


@pytest.fixture
def desired_file(tmp_path: Path) -> Path:
    path = tmp_path / "desired.yaml"
    path.write_text(DESIRED, encoding="utf-8")
    return path


@pytest.fixture
def profiled(cloud: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path / "ppcmk-home"))
    save_profile(profile(cloud))
    return cloud


def test_watch_reports_each_difference_from_the_desired_state(run_watch: Any, desired_file: Path) -> None:
    found = {(d.kind, d.object): d for d in run_watch(desired_state=str(desired_file)).drifts}
    assert set(found) == {("env.unlinked", "Contoso Production"),
                          ("env.not_microsoft_managed", "Finance on CMK"),
                          ("key.rotation_overdue", "kv-cmk-prod/cmk-prod")}
    assert "onboard target=sandbox-target-ep-existing" in found[("env.unlinked", "Contoso Production")].fix


def test_converge_dry_run_plans_exactly_the_three_runs(profiled: Any, prefect_backend: None,
                                                        desired_file: Path) -> None:
    result = CliRunner().invoke(app, ["converge", str(desired_file), "--dry-run"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "3 runbook run(s) to reach the desired state" in result.output
    for deployment in ("onboard/onboard-sandbox", "revert/revert-sandbox", "rotate/rotate-sandbox"):
        assert result.output.count(deployment) == 1, result.output
    assert "nothing was started" in result.output
    assert profiled.log.count(method="POST") == 0 and profiled.log.count(method="PUT") == 0


def test_converge_plans_the_parameters(cloud: Any, desired_file: Path) -> None:
    from ppcmk.watch.reading import read_estate

    runs = {run.runbook: run for run in plan_runs(read_estate(connection(cloud)),
                                                  parse_desired_state(DESIRED, "test"))}
    assert set(runs) == {"onboard", "revert", "rotate"}
    assert runs["onboard"].parameters == {
        "target": "sandbox-target-ep-existing", "pp_admin": PP_ADMIN,
        "requester": REQUESTER, "selector": {"environment_ids": [CONTOSO_PRODUCTION]}}
    target, requester = "sandbox-target-ep-existing", REQUESTER
    assert runs["revert"].parameters == {"target": target, "requester": requester,
                                         "selector": {"environment_ids": [FINANCE]}}
    assert runs["rotate"].parameters == {"target": target, "requester": requester, "approval": True}


def test_converge_moves_between_policies_with_change_policy() -> None:
    policies = [PolicyFact(policy_id=f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.PowerPlatform/"
                                     f"enterprisePolicies/{name}", name=name, resource_group="rg",
                           key_vault_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
                           key_name=key) for name, key in (("ep-old", "k-old"), ("ep-new", "k-new"))]
    envs = [EnvironmentFact(id=f"env-{n}", name=f"Env {n}", policy_id=policies[0].policy_id,
                            link_status="Linked") for n in (1, 2)]
    estate = EstateFacts(now=datetime(2026, 12, 1, tzinfo=UTC), policies=policies, environments=envs)
    desired = parse_desired_state("""
policies:
  - {name: ep-old, target: old-target}
  - {name: ep-new, target: new-target, environments: [Env 1, env-2]}
runbooks: {pp_admin: pp@contoso.example}
""", "test")
    [run] = plan_runs(estate, desired)
    assert run.runbook == "change_policy"
    assert run.parameters == {"target": "old-target", "new_policy_name": "ep-new", "new_key_name": "k-new",
                              "new_vault_id": policies[1].key_vault_id, "pp_admin": "pp@contoso.example",
                              "selector": {"environment_ids": ["env-1", "env-2"]}}


def test_a_bad_desired_state_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"policies\.0\.environments"):
        parse_desired_state("policies:\n  - {name: ep, environments: 3}\n", "desired.yaml")
    with pytest.raises(ConfigError, match="desired both in ep and in microsoft_managed"):
        parse_desired_state("policies: [{name: ep, environments: [A]}]\nmicrosoft_managed: [a]\n", "d.yaml")


def test_ppcmk_watch_exits_1_on_error_findings(profiled: Any, prefect_backend: None,
                                               fresh_state: None) -> None:
    runner = CliRunner()
    healthy = runner.invoke(app, ["watch"], env={"COLUMNS": "200"})
    assert healthy.exit_code == 0, healthy.output
    assert "no drift" in healthy.output
    change(profiled, lambda world: setattr(current_version(world), "enabled", False))
    broken = runner.invoke(app, ["watch"], env={"COLUMNS": "250"})
    assert broken.exit_code == 1, broken.output
    assert "key.disabled" in broken.output and "critical" in broken.output


def test_the_desired_state_from_a_block(run_watch: Any) -> None:
    from ppcmk_blocks.desired_state import CmkDesiredState

    CmkDesiredState(text=DESIRED).save("cmk-desired", overwrite=True)
    kinds = {d.kind for d in run_watch(desired_state="cmk-desired").drifts}
    assert kinds == {"env.unlinked", "env.not_microsoft_managed", "key.rotation_overdue"}
    with pytest.raises(ConfigError, match="neither a file nor a ppcmk desired state block"):
        run_watch(desired_state="no-such-block")
