"""``/_sandbox/...`` admin routes (no emulated API): clock, faults, log, reset, latency, endpoints."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ppcmk_sandbox.faults import FaultRule
from ppcmk_sandbox.http import Route, SandboxHttpError, SandboxRequest, SandboxResponse, arm_error

if TYPE_CHECKING:
    from ppcmk_sandbox.server import Sandbox


def _number(req: SandboxRequest, name: str) -> float:
    body = req.json_object(lambda m: arm_error(400, "BadRequest", m))
    value = body.get(name)
    if not isinstance(value, int | float) or value < 0:
        raise SandboxHttpError(arm_error(400, "BadRequest", f"{name}: give a non-negative number of seconds"))
    return float(value)


def admin_routes(sandbox: Sandbox) -> list[Route]:
    def endpoints(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        return SandboxResponse(200, sandbox.endpoints_for(req.base_url).to_dict())

    def clock(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        return SandboxResponse(200, {"now": sandbox.clock.now().isoformat(), "speed": sandbox.clock.speed})

    def advance(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        now = sandbox.clock.advance(timedelta(seconds=_number(req, "seconds")))
        return SandboxResponse(200, {"now": now.isoformat()})

    def add_fault(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        try:
            rule = FaultRule.model_validate(req.json_object(lambda m: arm_error(400, "BadRequest", m)))
        except ValidationError as exc:
            raise SandboxHttpError(arm_error(400, "BadRequest", f"fault rule: {exc}")) from exc
        return SandboxResponse(201, {"id": sandbox.faults.add_rule(rule)})

    def list_faults(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        return SandboxResponse(200, {"value": sandbox.faults.rules()})

    def clear_faults(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        sandbox.faults.clear()
        return SandboxResponse(204)

    def log(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        return SandboxResponse(200, {"value": sandbox.log.to_list()})

    def clear_log(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        sandbox.log.clear()
        return SandboxResponse(204)

    def reset(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        sandbox.reset()
        return SandboxResponse(200, {"now": sandbox.clock.now().isoformat()})

    def latency(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        sandbox.latency = _number(req, "seconds")
        return SandboxResponse(200, {"seconds": sandbox.latency})

    def state(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        body: dict[str, Any] = sandbox.world.to_dict()
        return SandboxResponse(200, body)

    return [
        Route("GET", "/_sandbox/endpoints", endpoints, "admin"),
        Route("GET", "/_sandbox/clock", clock, "admin"),
        Route("POST", "/_sandbox/clock/advance", advance, "admin", mutating=True),
        Route("POST", "/_sandbox/faults", add_fault, "admin"),
        Route("GET", "/_sandbox/faults", list_faults, "admin"),
        Route("DELETE", "/_sandbox/faults", clear_faults, "admin"),
        Route("GET", "/_sandbox/log", log, "admin"),
        Route("DELETE", "/_sandbox/log", clear_log, "admin"),
        Route("POST", "/_sandbox/reset", reset, "admin"),
        Route("POST", "/_sandbox/latency", latency, "admin"),
        Route("GET", "/_sandbox/state", state, "admin"),
    ]
