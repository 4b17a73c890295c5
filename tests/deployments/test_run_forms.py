"""The run forms `ppcmk serve` publishes explain themselves: every top-level parameter of every deployment
has a description (from the flow's docstring, or the model's Field descriptions), the same parameter has the
same type in every flow, the names are distinct and say which runbook they are, and a destructive runbook's
Quick run is a dry run (and its description says so)."""

from __future__ import annotations

from typing import Any

import pytest

from ppcmk_deployments.catalog import RUNBOOKS, sandbox_deployment_name
from ppcmk_deployments.serve import build_deployments
from ppcmk_flows._run_form import SHARED_HELP, run_form


def schemas() -> dict[str, dict[str, Any]]:
    return {d.flow_name: d._parameter_openapi_schema.model_dump() for d in build_deployments()}


def test_every_parameter_of_every_deployment_has_a_description() -> None:
    missing = {flow: [name for name, field in schema["properties"].items() if not field.get("description")]
               for flow, schema in schemas().items()}
    assert not {flow: names for flow, names in missing.items() if names}, missing


def test_model_parameters_describe_their_fields_too() -> None:
    definitions = schemas()["onboard"]["definitions"]
    for model in ("FleetSelector", "WaveSpec"):
        fields = definitions[model]["properties"]
        assert all(field.get("description") for field in fields.values()), model


# Parameters that mean the same in every runbook (cleanup's pp_connection, say, is optional there only: it
# reads environments only when an old policy is removed).
SHARED = ("kv_connection", "target", "pp_admin", "selector", "requester", "waves", "dry_run",
          "approval_timeout_s", "approval_poll_s", "operation_deadline_days", "max_link_attempts")


def test_the_same_parameter_has_the_same_type_everywhere() -> None:
    seen: dict[str, tuple[str, Any]] = {}
    for flow, schema in schemas().items():
        required = set(schema.get("required", []))
        for name, field in schema["properties"].items():
            if name not in SHARED:
                continue
            shape = ({k: v for k, v in field.items() if k in ("type", "anyOf", "allOf", "$ref")},
                     name in required)
            first = seen.setdefault(name, (flow, shape))
            assert first[1] == shape, f"{name}: {first[0]} has {first[1]}, {flow} has {shape}"


def test_deployment_names_are_distinct_and_name_the_runbook() -> None:
    deployments = build_deployments()
    names = [d.name for d in deployments]
    assert len(set(names)) == len(names)
    assert all(d.name == sandbox_deployment_name(d.flow_name) and d.flow_name in d.name for d in deployments)


def test_destructive_quick_runs_are_dry_runs_and_say_so() -> None:
    for deployment in build_deployments():
        runbook = RUNBOOKS.get(deployment.flow_name)
        if runbook is None:
            continue
        assert (deployment.parameters.get("dry_run") is True) == runbook.sandbox_dry_run
        assert ("DRY RUN" in (deployment.description or "")) == runbook.sandbox_dry_run


def test_a_runbook_parameter_without_help_is_refused_at_import() -> None:
    def runbook(kv_connection: str, surprise: int = 0) -> None:
        """A runbook."""

    with pytest.raises(TypeError, match=r"none for \['surprise'\]"):
        run_form(runbook)


def test_help_for_a_parameter_the_runbook_does_not_have_is_refused() -> None:
    def runbook(kv_connection: str) -> None:
        """A runbook.

        Args:
            kv_conection: a typo.
        """

    with pytest.raises(TypeError, match=r"no such parameter \['kv_conection'\]"):
        run_form(runbook)


def test_the_shared_help_and_the_runbooks_own_help_reach_the_run_form() -> None:
    onboard = schemas()["onboard"]["properties"]
    assert " ".join(onboard["kv_connection"]["description"].split()) == SHARED_HELP["kv_connection"]
    assert "onboarding never guesses" in onboard["selector"]["description"]
    revert = schemas()["revert"]["properties"]
    assert revert["connection"]["description"].startswith("CmkConnection block with the Power Platform")
