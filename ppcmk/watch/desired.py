"""The desired state of the estate: which environments belong on which policy and key, on the
Microsoft-managed key, how often keys rotate and how far ahead expiry is watched.

Written as YAML (a file, or the text of a `ppcmk desired state` block); `watch` reports every difference and
`ppcmk converge` plans the runbook runs that remove them. Example:

    policies:
      - name: ep-existing          # the enterprise policy
        resource_group: rg-cmk
        target: sandbox-target     # the CmkTarget block the runbooks use for this policy and its key
        vault: kv-cmk-prod         # optional: the key vault (name or ARM id) the policy must reference
        key: cmk-prod              # optional: the key it must reference
        environments: [Finance on CMK, e1000000-0000-4000-8000-000000000001]   # names or ids
    microsoft_managed: [Contoso Sandbox]
    rotation: {cadence_days: 90}
    expiry_horizon_days: 60
    pp_admins: [pp-admin@contoso.example]
    runbooks:                      # what converge passes to the runbooks it starts
      pp_admin: pp-admin@contoso.example
      requester: kv-admin@contoso.example
      # kv_connection / pp_connection / connection: block names (default: the deployment's)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ppcmk.errors import ConfigError

DEFAULT_EXPIRY_HORIZON_DAYS = 60


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DesiredPolicy(_Strict):
    name: str = Field(min_length=1, description="enterprise policy name")
    resource_group: str | None = Field(default=None, description="its resource group (optional check)")
    target: str | None = Field(default=None, description="CmkTarget block naming this policy and its key")
    vault: str | None = Field(default=None, description="key vault name or ARM id the policy must use")
    key: str | None = Field(default=None, description="key name the policy must use")
    environments: list[str] = Field(default_factory=list, description="environment names or ids")

    def vault_matches(self, vault_id: str | None) -> bool:
        if self.vault is None:
            return True
        wanted = self.vault.rstrip("/").lower()
        have = (vault_id or "").rstrip("/").lower()
        return have == wanted or have.rsplit("/", 1)[-1] == wanted


class Rotation(_Strict):
    cadence_days: int = Field(gt=0, description="rotate at least this often (days)")


class RunbookDefaults(_Strict):
    """What converge passes to the runbooks it starts: connection block names (unset: the deployment's
    defaults) and the people involved."""

    kv_connection: str | None = None
    pp_connection: str | None = None
    connection: str | None = None
    pp_admin: str | None = None
    requester: str | None = None

    def given(self, *fields: str) -> dict[str, str]:
        """The named fields that are set, as runbook parameters."""
        return {name: value for name in fields if (value := getattr(self, name))}


class DesiredState(_Strict):
    policies: list[DesiredPolicy] = Field(default_factory=list)
    microsoft_managed: list[str] = Field(default_factory=list, description="environments on Microsoft's key")
    rotation: Rotation | None = None
    expiry_horizon_days: int = Field(default=DEFAULT_EXPIRY_HORIZON_DAYS, gt=0)
    pp_admins: list[str] = Field(default_factory=list, description="who must keep Reader on the policies")
    runbooks: RunbookDefaults = Field(default_factory=RunbookDefaults)

    @field_validator("policies")
    @classmethod
    def _unique_policies(cls, policies: list[DesiredPolicy]) -> list[DesiredPolicy]:
        names = [p.name.lower() for p in policies]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"policy {', '.join(twice)} is listed more than once; list each policy once")
        return policies

    @model_validator(mode="after")
    def _one_place_per_environment(self) -> DesiredState:
        seen: dict[str, str] = {}
        places = [(p.name, p.environments) for p in self.policies] + [("microsoft_managed",
                                                                     self.microsoft_managed)]
        for place, environments in places:
            for environment in environments:
                other = seen.setdefault(environment.lower(), place)
                if other != place:
                    raise ValueError(f"environment {environment!r} is desired both in {other} and in "
                                     f"{place}; keep it in one place")
        return self

    def policy(self, name: str) -> DesiredPolicy | None:
        return next((p for p in self.policies if p.name.lower() == name.lower()), None)

    def place_of(self, *names: str) -> DesiredPolicy | Literal["microsoft"] | None:
        """Where an environment (by any of its names: id, display name) belongs; None: not managed here."""
        wanted = {n.lower() for n in names}
        for policy in self.policies:
            if wanted & {e.lower() for e in policy.environments}:
                return policy
        return "microsoft" if wanted & {e.lower() for e in self.microsoft_managed} else None


def parse_desired_state(text: str, source: str) -> DesiredState:
    """Validate desired-state YAML; a mistake is a ConfigError naming the field and the fix."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as bad:
        mark = getattr(bad, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(bad, "problem", None) or " ".join(str(bad).split())
        raise ConfigError(source, f"not valid YAML ({problem}{where})", "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(source, "the desired state must be a mapping (policies:, microsoft_managed:, ...)",
                          "start the file with `policies:`")
    try:
        return DesiredState.model_validate(data)
    except ValidationError as invalid:
        first = invalid.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "desired state"
        if first["type"] == "extra_forbidden":
            keys = ", ".join(_model_at(first["loc"][:-1]).model_fields)
            raise ConfigError(f"{source}: {field}", "no such key", f"use one of {keys} (docs/WATCH.md)"
                              ) from None
        raise ConfigError(f"{source}: {field}", first["msg"],
                          "see docs/WATCH.md for the desired-state format") from None


def _model_at(location: tuple[int | str, ...]) -> type[BaseModel]:
    """The part of the desired state a key sits in (`policies.0` is a policy)."""
    parts: dict[str, type[BaseModel]] = {"policies": DesiredPolicy, "rotation": Rotation,
                                         "runbooks": RunbookDefaults}
    model: type[BaseModel] = DesiredState
    for part in location:
        model = parts.get(part, model) if isinstance(part, str) else model
    return model


def load_desired_state_file(path: str | Path) -> DesiredState:
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as unreadable:
        raise ConfigError(str(file), f"cannot be read ({unreadable.strerror})",
                          "give the path of a desired-state YAML file") from None
    return parse_desired_state(text, str(file))
