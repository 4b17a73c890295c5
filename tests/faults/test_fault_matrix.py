"""The fault matrix: for each runbook (tests/faults/runbooks.py), the write calls of a clean run (read from
the sandbox's request log), and for each of them a transient fault, a persistent one and a crash after it.

- transient (a 503, or a 429 with Retry-After, then success; every write of one run at once): the run
  converges to the clean run's end state and no write is made twice;
- persistent (500 on every attempt): the run fails, its message naming the step and its object and what a
  re-run does;
- crash (the write is applied, then the caller is gone: nothing it sends is answered, no end-of-run hook runs,
  the run ends Crashed with its claims left, as when its process dies): once the cloud answers again, a
  re-run converges to the clean run's end state, and no non-idempotent write
  (a POST: a key version, a Managed Environment change, a link, a re-enable) is made more times than in the
  clean run. The crash is injected into the re-run of the persistent cell of the same write, so one failed run
  precedes it (what an operator's second attempt meets): its writes count against the same limit.

One sandbox, reset between cells; the virtual clock carries the four-hour link in no real time. The cells'
verdicts are kept in `MATRIX` for the counts test (tests/faults/test_counts.py).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from prefect.states import State

from tests.faults.runbooks import RUNBOOKS, Runbook, forget_runbook_variables, world_summary
from tests.faults.tally import MATRIX
from tests.support.sandbox import changes_the_cloud

pytestmark = pytest.mark.usefixtures("prefect_backend")

DROPPED = 0
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
KEY_VERSION = re.compile(r"/[0-9a-f]{32}(?=/|$)")
Write = tuple[str, str]  # method, path pattern (the ids a run makes anew matched by any id)


def _pattern(path: str) -> str:
    anyid = GUID.sub("[0-9a-fA-F-]{36}", re.escape(path).replace(r"\-", "-"))
    return "^" + KEY_VERSION.sub("/[0-9a-f]{32}", anyid) + "$"


def successful_writes(cloud: Any) -> Counter[Write]:
    return Counter((e.method, _pattern(e.path)) for e in cloud.log.entries
                   if changes_the_cloud(e.method, e.path) and (e.status == DROPPED or e.status < 400))


_clean: dict[str, tuple[Any, Counter[Write]]] = {}


def fresh(runbook: Runbook, cloud: Any, blocks: dict[str, str]) -> None:
    cloud.reset()
    forget_runbook_variables()
    runbook.prepare(cloud, blocks)
    cloud.log.clear()


def clean_run(runbook: Runbook, cloud: Any, blocks: dict[str, str]) -> tuple[Any, Counter[Write]]:
    """The end state and the writes of a fault-free run (once per runbook and session)."""
    if runbook.name not in _clean:
        fresh(runbook, cloud, blocks)
        state = runbook.run(blocks)
        assert done(state), (state.message, _outcome(state))
        _clean[runbook.name] = (world_summary(cloud), successful_writes(cloud))
    return _clean[runbook.name]


def _outcome(state: State) -> Any:
    return state.result(raise_on_failure=False)


def done(state: State) -> bool:
    """Completed, with nothing left undone (a runbook whose environments failed ends Completed, "partial")."""
    outcome = _outcome(state)
    return state.is_completed() and getattr(outcome, "status", "completed") in ("completed", "nothing-to-do")


def _converged(cloud: Any, state: State, clean: tuple[Any, Counter[Write]], repeatable: bool) -> list[str]:
    """What differs from the clean run: not done, another end state, writes made twice."""
    if not done(state):
        return [f"the re-run did not converge: {str(state.message)[:200]} {str(_outcome(state))[:600]}"]
    problems: list[str] = []
    if (end := world_summary(cloud)) != clean[0]:
        changed = {k: v for k, v in end.items() if v != clean[0][k]}
        problems.append(f"end state differs from the clean run's: {changed}")
    doubled = [w for w, n in successful_writes(cloud).items()
               if n > clean[1][w] and (not repeatable or w[0] == "POST")]
    if doubled:
        problems.append(f"written more often than in the clean run: {doubled}")
    return problems


def _transient(runbook: Runbook, cloud: Any, blocks: dict[str, str], clean: tuple[Any, Counter[Write]]
               ) -> dict[Write, list[str]]:
    """Every write's first attempt refused once (503, or 429 with Retry-After, alternately), in one run."""
    fresh(runbook, cloud, blocks)
    rules = {write: cloud.faults.add(write[0], write[1], times=1, status=429 if i % 2 else 503,
                                     retry_after="1" if i % 2 else None)
             for i, write in enumerate(sorted(clean[1]))}
    problems = _converged(cloud, runbook.run(blocks), clean, repeatable=False)
    left = {r["id"] for r in cloud.faults.rules()}
    return {w: [*problems, *(["the fault was never hit"] if rule in left else [])]
            for w, rule in rules.items()}


def _persistent_then_crash(runbook: Runbook, write: Write, cloud: Any, blocks: dict[str, str],
                           clean: tuple[Any, Counter[Write]]) -> tuple[list[str], list[str]]:
    """The persistent cell of one write, then the crash cell on its re-run: each one's problems."""
    fresh(runbook, cloud, blocks)
    cloud.faults.add(write[0], write[1], status=500, times=None)
    state = runbook.run(blocks)
    message = str(state.message or "") + repr(_outcome(state))
    persistent: list[str] = []
    if done(state):
        persistent.append("a persistent fault did not stop the run")
    elif "failed:" not in message or not ("re-run" in message or "run again" in message):
        persistent.append(f"the failure does not name the step: {message[:600]}")
    cloud.faults.clear()
    cloud.faults.crash_after(write[0], write[1])
    runbook.run(blocks, crashing=True)
    crash: list[str] = []
    if any(r["crash"] for r in cloud.faults.rules()):
        crash.append("the write was not made again after the persistent fault")
    cloud.faults.clear()
    rerun = runbook.run(blocks)
    crash += _converged(cloud, rerun, clean, repeatable=True)
    return persistent, crash


def _matrix() -> list[tuple[Runbook, str]]:
    return [(runbook, kind) for runbook in RUNBOOKS for kind in ("transient", "persistent+crash")]


@pytest.mark.timeout(900)  # a row runs its runbook 2-3 times per write
@pytest.mark.parametrize(("runbook", "kind"), _matrix(), ids=[f"{r.name}-{k}" for r, k in _matrix()])
def test_every_write_survives_its_fault(
    runbook: Runbook, kind: str, cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    clean = clean_run(runbook, cloud, sandbox_blocks)
    assert clean[1], "the clean run wrote nothing"
    if kind == "transient":
        verdicts = {"transient": _transient(runbook, cloud, sandbox_blocks, clean)}
    else:
        both = {w: _persistent_then_crash(runbook, w, cloud, sandbox_blocks, clean) for w in sorted(clean[1])}
        verdicts = {"persistent": {w: p for w, (p, _) in both.items()},
                    "crash": {w: c for w, (_, c) in both.items()}}
    for fault, cells in verdicts.items():
        MATRIX.record(runbook.name, fault, {f"{m} {p}": problems for (m, p), problems in cells.items()})
    failures = {f"{fault} {m} {p}": problems for fault, cells in verdicts.items()
                for (m, p), problems in cells.items() if problems}
    listed = "\n".join(f"{cell}: {'; '.join(problems)}" for cell, problems in failures.items())
    assert not failures, f"{len(failures)} of {sum(map(len, verdicts.values()))} cells failed:\n{listed}"
