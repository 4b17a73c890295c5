"""deployments/prefect.yaml is written by hand: every deployment must name a real flow, pass only parameters
that flow declares, and every runbook in the catalog must be deployed (the serve path derives its parameters
from the signatures; this file cannot)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow

from ppcmk_deployments.catalog import RUNBOOKS

ROOT = Path(__file__).resolve().parents[2]


def deployments() -> list[dict[str, Any]]:
    return list(yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())["deployments"])


def load_flow(entrypoint: str) -> Flow[..., Any]:
    path, name = entrypoint.split(":")
    flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)
    assert isinstance(flow, Flow), f"{entrypoint} is not a Prefect flow"
    return flow


def test_each_deployment_passes_only_parameters_its_flow_declares() -> None:
    for deployment in deployments():
        declared = inspect.signature(load_flow(deployment["entrypoint"]).fn).parameters
        unknown = set(deployment.get("parameters") or {}) - set(declared)
        assert not unknown, f"{deployment['entrypoint']} has no parameter(s) {sorted(unknown)}"


def test_every_runbook_is_deployed_with_its_connection_blocks_named() -> None:
    by_entrypoint = {d["entrypoint"]: d for d in deployments()}
    for runbook in RUNBOOKS.values():
        assert runbook.entrypoint in by_entrypoint, f"{runbook.name} is missing from prefect.yaml"
        given = set(by_entrypoint[runbook.entrypoint].get("parameters") or {})
        connections = {p for p in runbook.parameter_names() if p.endswith("connection")}
        assert connections <= given, f"{runbook.name}: no block named for {sorted(connections - given)}"


def test_deployment_names_say_which_runbook_they_are() -> None:
    names = [deployment["name"] for deployment in deployments()]
    assert len(set(names)) == len(names), names
    for deployment in deployments():
        runbook = deployment["entrypoint"].rsplit(":", 1)[-1]
        assert deployment["name"].startswith(runbook.replace("wake", "ppcmk-wake")), deployment["name"]
