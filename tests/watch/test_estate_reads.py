"""Estate reads: bounded concurrency, each shared object read once, no call per environment unless its
operations matter, Retry-After honoured on throttling."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from ppcmk.cloud.parallel import bounded_map
from ppcmk.watch.reading import read_estate
from ppcmk_sandbox.powerplatform.lifecycle import start_operation
from ppcmk_sandbox.powerplatform.records import OperationType
from tests.support.sandbox import connection
from tests.support.scenario import KEY, LINKED_POLICY, PP_ADMIN
from tests.support.scenario import PRODUCTION as CONTOSO_PRODUCTION
from tests.support.world import change, linked_policy

OPERATIONS = r"/environmentmanagement/environments/.*/operations"


def test_bounded_map_keeps_order_bounds_threads_and_returns_errors() -> None:
    running, peak, lock = 0, 0, threading.Lock()

    def slow(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)  # a real wait, so that the threads overlap (no clock is asserted on)
        with lock:
            running -= 1
        if n == 3:
            raise ValueError("three")
        return n * 2

    results = bounded_map(slow, range(20), concurrency=4)
    assert results[:3] == [0, 2, 4] and isinstance(results[3], ValueError) and results[19] == 38
    assert 1 < peak <= 4


def test_the_estate_costs_no_call_per_environment(cloud: Any) -> None:
    estate = read_estate(connection(cloud), [PP_ADMIN])
    assert len(estate.environments) == 12 and [p.name for p in estate.policies] == [LINKED_POLICY]
    assert estate.failures == []
    assert cloud.log.count(path=OPERATIONS) == 0
    assert cloud.log.count(path=r"/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments") == 1
    assert cloud.log.count(path=rf"/keys/{KEY}/versions") == 1


def test_a_running_link_costs_one_operations_read(cloud: Any) -> None:
    def start_link(world: Any) -> None:
        policy = linked_policy(world)
        production = world.powerplatform.environment(CONTOSO_PRODUCTION)
        start_operation(world, production, OperationType.LINK, 3600, None,
                        target={"policy_id": policy.arm_id})

    change(cloud, start_link)
    cloud.clock.advance(timedelta(minutes=10))
    estate = read_estate(connection(cloud))
    assert cloud.log.count(path=OPERATIONS) == 1
    env = next(e for e in estate.environments if e.id == CONTOSO_PRODUCTION)
    assert env.operations and env.operations[0].active


def test_throttling_waits_for_retry_after(cloud: Any) -> None:
    cloud.faults.add(method="GET", path=r"enterprisePolicies", status=429, times=1, retry_after="7")
    before = cloud.clock.now()
    estate = read_estate(connection(cloud))
    assert estate.failures == [] and estate.policies
    assert cloud.clock.now() - before >= timedelta(seconds=7)  # the virtual clock: no real wait
    assert cloud.log.count(path=r"enterprisePolicies$", status=429) == 1
