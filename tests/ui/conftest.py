"""The browser tests' page: Debian's chromium, trusting the session sandbox's certificate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ppcmk_sandbox import Sandbox
from tests.support.browser import chromium


@pytest.fixture
def browser_page(cloud: Sandbox) -> Iterator[Any]:
    with chromium(trusting=cloud.tls.cert_chain) as browser:
        page = browser.new_page()
        page.set_default_timeout(60_000)
        yield page
