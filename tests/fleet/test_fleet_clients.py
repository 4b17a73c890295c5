"""The Power Platform admin client as a fleet uses it: one per thread, and a read resent when the server
dropped the connection it was sent on (a POST is not: the task's read-before-write decides)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import TransientError
from ppcmk.services.factory import ClientFactory
from ppcmk.services.ppadmin import PowerPlatformAdminClient
from tests.support.scenario import BUSY_SANDBOX, UNMANAGED


def test_each_thread_gets_its_own_admin_client(pp_admin: ConnectionSettings) -> None:
    factory = ClientFactory.for_settings(pp_admin)
    mine = factory.pp_admin()
    others: list[PowerPlatformAdminClient] = []
    both_running = threading.Barrier(2)

    def other_thread() -> None:
        both_running.wait()  # two live threads at once, so neither can be handed the other's client
        others.append(factory.pp_admin())

    threads = [threading.Thread(target=other_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert factory.pp_admin() is mine  # cached within a thread
    assert len({id(client) for client in [mine, *others]}) == 3
    assert all(client.get_environment(BUSY_SANDBOX).id == BUSY_SANDBOX for client in [mine, *others])


def test_a_read_is_resent_when_the_server_drops_the_connection(
    fleet: Any, pp_admin: ConnectionSettings
) -> None:
    admin = ClientFactory.for_settings(pp_admin).pp_admin()
    fleet.faults.add(method="GET", path=rf"/environments/{BUSY_SANDBOX}$", drop=True, times=1)

    assert admin.get_environment(BUSY_SANDBOX).id == BUSY_SANDBOX
    statuses = [e.status for e in fleet.log.entries if e.path.endswith(BUSY_SANDBOX)]
    assert statuses == [0, 200]  # dropped once, then answered


def test_a_start_is_not_resent_when_the_server_drops_the_connection(
    fleet: Any, pp_admin: ConnectionSettings
) -> None:
    admin = ClientFactory.for_settings(pp_admin).pp_admin()
    fleet.faults.add(method="POST", path=r"/governanceConfiguration$", drop=True, times=1)

    with pytest.raises(TransientError):
        admin.begin_enable_managed(UNMANAGED)  # no operation runs on it: the start is sent
    # only the start's own POSTs: a first call in this process also POSTs for its token
    starts = [e for e in fleet.log.entries
              if e.method == "POST" and e.path.endswith("/governanceConfiguration")]
    assert [e.status for e in starts] == [0]
