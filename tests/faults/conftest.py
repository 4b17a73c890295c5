"""Each fault test's outcome goes to the session's counts (tests/faults/tally.py): the bad-input catalogue's
cases and the TLS cases, as N of N in the summary line."""

from __future__ import annotations

import pytest

from tests.faults import tally

CATALOGUES = {"test_bad_input": "[", "test_tls": "::test_"}  # module → what its counted tests' ids hold


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" and not (report.when == "setup" and report.failed):
        return
    module = report.nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    if module in CATALOGUES:
        tally.append("outcome", module=module, passed=report.passed,
                     catalogue=CATALOGUES[module] in report.nodeid)
