"""Which environments a fleet run touches: the facts selection needs, and the selector a flow takes."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


def parameter_object(model: type[BaseModel], value: Any, example: str) -> Any:
    """An object run parameter as given: JSON text (a parameter typed in a form or on the command line)
    is parsed, anything but an object is refused, and so is a key the model does not have, naming the
    keys it has; the model validates the rest."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as broken:
            raise ValueError(f"not valid JSON ({broken}); write an object such as {example}") from None
    if isinstance(value, dict):
        unknown = sorted(str(key) for key in value if key not in model.model_fields)
        if unknown:
            keys = ", ".join(model.model_fields)
            raise ValueError(f"no such key {', '.join(unknown)}; the keys are {keys}")
    elif not isinstance(value, model):
        given = json.dumps(value, default=str)
        raise ValueError(f"{given} is not an object; write one such as {example}")
    return value


class FleetMember(BaseModel):
    """The facts about an environment that selection and wave planning need."""

    id: str
    name: str = ""
    sku: str = ""
    geo: str = ""


class FleetSelector(BaseModel):
    """Which environments a run touches: an explicit list, or every one matching all the given filters."""

    # a misspelt filter (`envs`) would otherwise be dropped, and the run would act on its default
    # selection
    model_config = ConfigDict(extra="forbid")

    environment_ids: list[str] | None = Field(
        default=None, description="exact environment ids (names also match)"
    )
    geo: str | None = Field(default=None, description="Power Platform geo, e.g. europe or unitedstates")
    skus: list[str] | None = Field(
        default=None, description="environment types, e.g. ['Sandbox', 'Production']"
    )
    name_pattern: str | None = Field(
        default=None, description="shell-style pattern on the display name, e.g. 'fin-*'"
    )

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        return parameter_object(cls, value, '{"environment_ids": ["Contoso Production"]}')

    def is_empty(self) -> bool:
        return not (self.environment_ids or self.geo or self.skus or self.name_pattern)

    def select(self, members: Sequence[FleetMember]) -> list[FleetMember]:
        """Members matching every filter, in the given order. Unknown explicit ids raise a clear error."""
        if self.environment_ids:
            wanted = {i.lower() for i in self.environment_ids}
            known = {m.id.lower() for m in members} | {m.name.lower() for m in members}
            missing = sorted(i for i in self.environment_ids if i.lower() not in known)
            if missing:
                raise ValueError(
                    f"selector.environment_ids: {', '.join(missing)} not found among the "
                    f"{len(members)} visible environment(s); check the ids with the report flow"
                )
        chosen = []
        for member in members:
            if self.environment_ids and not {member.id.lower(), member.name.lower()} & wanted:
                continue
            if self.geo and member.geo.lower() != self.geo.lower():
                continue
            if self.skus and member.sku.lower() not in {s.lower() for s in self.skus}:
                continue
            if self.name_pattern and not fnmatch.fnmatch(member.name.lower(), self.name_pattern.lower()):
                continue
            chosen.append(member)
        return chosen
