"""The Power Platform admin's path in a real browser (Debian's chromium driven by Playwright) against
`ppcmk serve`: Run ▸ Quick run on the onboard deployment, open the suspended run, read the Resume form (the
environments by name, their outage windows), get a proof at the sign-in page `ppcmk serve` runs (signing in
as the Power Platform admin at the sandbox's identity provider), paste it, choose the decision, Submit. A
rejected run ends in the state "Rejected"; an approved one ends Completed. Screenshots of each step are kept
in the module's temporary directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings

from ppcmk_cli.demo_backend import ensure_template, free_port
from ppcmk_deployments.serve import deployment_full_name
from tests.support.browser import chromium, needs_a_browser
from tests.support.plans import unnamed_ids
from tests.support.served import ROOT, deployment_ready, serving, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900), needs_a_browser]
APPROVER = "pp-admin"  # the sandbox's Power Platform admin, who signs in with their own password
PAGE_TIMEOUT_MS = 120_000  # a busy machine renders the UI slowly
FINAL = ("Completed", "Failed", "Crashed", "Cancelled", "Rejected", "Expired")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """`ppcmk serve` (Prefect server and UI, sandbox, blocks, deployments) in a subprocess on free ports,
    its homes private; the Prefect database starts from the migrated template."""
    home = tmp_path_factory.mktemp("served-ui")
    (home / "ppcmk" / "prefect").mkdir(parents=True)
    shutil.copyfile(ensure_template(), home / "ppcmk" / "prefect" / "prefect.db")
    port = free_port()
    env = {**os.environ, "PPCMK_HOME": str(home / "ppcmk"), "PREFECT_HOME": str(home / "prefect-home"),
           "PPCMK_RETRY_DELAY_SCALE": "0", "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_API_URL", None)
    args = ["-m", "ppcmk_cli", "serve", "--prefect-port", str(port), "--sandbox-port", str(free_port()),
            "--sign-in-port", str(free_port()), "--clock-speed", "0", "--limit", "2"]
    ui = f"http://127.0.0.1:{port}"
    onboard = deployment_full_name("onboard")
    with (serving(args, env, home / "serve.log", stop=signal.SIGTERM, stop_timeout=30) as serve,
          temporary_settings(updates={PREFECT_API_URL: f"{ui}/api"})):
        wait_for("the onboard deployment", lambda: deployment_ready(onboard), 300, serve)
        yield ui, serve, home


@pytest.fixture(scope="module")
def browser(served: tuple[str, subprocess.Popen[bytes], Path]) -> Iterator[Any]:
    """Chromium trusting the served sandbox's certificate (its identity provider signs people in)."""
    tls = Path(served_profile(served[2])["ca"]).parent
    with chromium(trusting=tls / "sandbox-cert.pem") as launched:
        yield launched


def served_profile(home: Path) -> dict[str, Any]:
    return dict(json.loads((home / "ppcmk" / "sandbox.json").read_text()))


def runs_of(runbook: str) -> dict[UUID, str]:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[runbook])))
    return {run.id: run.state.name if run.state else "" for run in runs}


def state_of(run_id: UUID) -> str:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    return state.name if state else ""


def quick_run(page: Any, ui: str, serve: subprocess.Popen[bytes], runbook: str = "onboard") -> UUID:
    """The onboard deployment's page → Run ▸ Quick run (the UI shows the defaults; Run starts it)."""
    before = set(runs_of(runbook))
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(deployment_full_name(runbook))
    page.goto(f"{ui}/deployments/deployment/{deployment.id}")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Quick run", exact=True).click()
    dialog = page.get_by_role("dialog")
    wait_for("the run dialog or the run", lambda: dialog.count() or set(runs_of(runbook)) - before, 60, serve)
    if dialog.count():
        page.wait_for_load_state("networkidle")  # the form has its schema and defaults
        run_button = dialog.get_by_role("button", name="Run", exact=True)
        (run_id,) = click_until("the new run", run_button, dialog, lambda: set(runs_of(runbook)) - before,
                                serve)
        dialog.wait_for(state="hidden")
        return run_id
    (run_id,) = wait_for("the new run", lambda: set(runs_of(runbook)) - before, 180, serve)
    return run_id


def click_until(what: str, button: Any, dialog: Any, done: Callable[[], Any],
                serve: subprocess.Popen[bytes]) -> Any:
    """Click a dialog's button and wait for `done()`. A click the busy UI dropped leaves the dialog open and
    does nothing: click again, not sooner than 20 s after the last one, so a slow but accepted click is not
    doubled."""
    clicked = [time.monotonic()]
    button.click()

    def happened() -> Any:
        value = done()
        if not value and dialog.count() and time.monotonic() - clicked[-1] > 20:
            clicked.append(time.monotonic())
            button.click()
        return value

    return wait_for(what, happened, 180, serve)


def choose(page: Any, dialog: Any, label: str, option: str) -> None:
    """Pick an option of one of the form's choices (the select opens from the keyboard)."""
    field = dialog.locator(".schema-form-property", has_text=label).first
    field.locator(".p-select-button__control").focus()
    page.keyboard.press("ArrowDown")
    page.locator(".p-select-option", has_text=option).first.click()
    page.locator(".p-select-options").wait_for(state="hidden")
    assert option in field.locator(".p-select-button__value").inner_text()


# Is the element's bottom inside every scrolling box around it and inside the window, as the page opened?
SEEN_WITHOUT_SCROLLING = """element => {
    const bottom = element.getBoundingClientRect().bottom;
    for (let box = element.parentElement; box; box = box.parentElement) {
        const style = getComputedStyle(box);
        const scrolls = /(auto|scroll)/.test(style.overflowY) && box.scrollHeight > box.clientHeight;
        if (scrolls && bottom > box.getBoundingClientRect().bottom) return false;
    }
    return bottom <= window.innerHeight;
}"""
ESSENTIALS = ("You decide:", "Requested by", "Prove who you are:")


def unseen_essentials(dialog: Any) -> list[str]:
    """The form's essentials a person would have to scroll to, inside the description or the page."""
    return [text for text in ESSENTIALS
            if not dialog.get_by_text(text, exact=False).first.evaluate(SEEN_WITHOUT_SCROLLING)]


def sign_in_page(shown: str) -> str:
    """The sign-in page the form names (`ppcmk serve` runs it)."""
    found = re.search(r"open (http://localhost:\d+/)", shown)
    assert found, f"the form names no sign-in page:\n{shown}"
    return found[1]


def proof_from_the_sign_in_page(page: Any, address: str, home: Path, shots: Path) -> str:
    """In a new tab: the sign-in page sends the person to the identity provider, they sign in with their UPN
    and password, and the page shows their proof."""
    person = json.loads(Path(served_profile(home)["credentials"]).read_text())["principals"][APPROVER]
    tab = page.context.browser.new_page()  # its own context, as another tab of the person's browser
    tab.goto(address)
    tab.fill("#i0116", person["upn"])
    tab.fill("#i0118", person["password"])
    tab.click("#idSIButton9")
    tab.wait_for_selector("#proof")
    tab.screenshot(path=str(shots / "proof.png"))
    proof = str(tab.input_value("#proof"))
    tab.close()
    return proof


def answer_in_the_ui(page: Any, ui: str, run_id: UUID, decision: str, home: Path,
                     serve: subprocess.Popen[bytes]) -> str:
    """Open the suspended run, Resume, prove who you are at the sign-in page the form names, answer; returns
    the text the form showed."""
    page.goto(f"{ui}/runs/flow-run/{run_id}")
    page.get_by_role("button", name="Resume").click()
    dialog = page.get_by_role("dialog")
    dialog.locator(".schema-form-property__label", has_text="Your proof").wait_for()
    shown = dialog.inner_text()
    page.screenshot(path=str(home / f"{decision}-form-opened.png"))
    assert unseen_essentials(dialog) == [], "essentials of the plan below the fold of the Resume form"
    proof = proof_from_the_sign_in_page(page, sign_in_page(" ".join(shown.split())), home, home)
    choose(page, dialog, "Decision", decision)
    field = dialog.locator(".schema-form-property", has_text="Your proof").first
    field.locator("input, textarea").first.fill(proof)
    page.screenshot(path=str(home / f"{decision}-form.png"))  # the proof shows as dots
    submit = dialog.get_by_role("button", name="Submit")
    click_until("the answer to be taken", submit, dialog, lambda: state_of(run_id) != "Suspended", serve)
    dialog.wait_for(state="hidden")  # the server accepted the answer
    return str(shown)


def suspended_run(page: Any, served: tuple[str, subprocess.Popen[bytes], Path]) -> UUID:
    ui, serve, _ = served
    run_id = quick_run(page, ui, serve)
    wait_for("the run to wait for approval", lambda: state_of(run_id) == "Suspended", 300, serve)
    return run_id


@dataclass
class Answered:
    """A Quick run of onboard answered in the browser: the page it ended on, the Resume form's text and the
    run's final state."""

    page: Any
    shown: str
    final: str


def answered(served: tuple[str, subprocess.Popen[bytes], Path], browser: Any, decision: str,
             timeout: float) -> Answered:
    ui, serve, home = served
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    with temporary_settings(updates={PREFECT_API_URL: f"{ui}/api"}):
        run_id = suspended_run(page, served)
        shown = answer_in_the_ui(page, ui, run_id, decision, home, serve)
        final = wait_for("the run to end", lambda: (name := state_of(run_id)) in FINAL and name, timeout,
                         serve)
    return Answered(page, shown, final)


def test_a_plan_rejected_in_the_browser_ends_the_run_rejected(
    served: tuple[str, subprocess.Popen[bytes], Path], browser: Any
) -> None:
    home = served[2]
    run = answered(served, browser, "reject", 180)
    assert run.final == "Rejected", (home / "serve.log").read_text()[-3000:]
    run.page.reload()
    run.page.get_by_text("Rejected").first.wait_for()
    run.page.screenshot(path=str(home / "rejected-run.png"))


def test_a_plan_approved_in_the_browser_completes(
    served: tuple[str, subprocess.Popen[bytes], Path], browser: Any
) -> None:
    home = served[2]
    run = answered(served, browser, "approve", 300)
    for expected in ("You decide:", "Contoso Production", "Contoso Sandbox", "Outage #1 of",
                     "Requested by", "May approve", "Prove who you are", "Plan"):
        assert expected in run.shown, f"{expected!r} not on the Resume form:\n{run.shown}"
    assert run.final == "Completed", (home / "serve.log").read_text()[-3000:]
    run.page.reload()
    run.page.get_by_text("Completed").first.wait_for()
    run.page.screenshot(path=str(home / "completed-run.png"))
    # the plan the approver read, as the UI shows it: people and environments by name, no id alone
    run.page.goto(f"{served[0]}/artifacts/key/onboard-plan")
    run.page.get_by_text("Requested by").first.wait_for()
    run.page.screenshot(path=str(home / "onboard-plan.png"))
    shown = run.page.inner_text("body")
    assert "Key Vault Admin (kv-admin@contoso.example)" in shown
    assert unnamed_ids(shown, []) == [], shown


def test_a_dry_run_quick_run_reads_as_one_in_the_runs_list_and_its_plan(
    served: tuple[str, subprocess.Popen[bytes], Path], browser: Any
) -> None:
    """revert's Quick run only plans: the runs list shows it as a dry run, and its plan says so."""
    ui, serve, home = served
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    run_id = quick_run(page, ui, serve, "revert")
    assert wait_for("the dry run to end", lambda: (name := state_of(run_id)) in (*FINAL, "Dry run") and name,
                    300, serve) == "Dry run"
    page.goto(f"{ui}/runs")
    page.get_by_text("Dry run").first.wait_for()
    page.screenshot(path=str(home / "runs-list-dry-run.png"))
    page.goto(f"{ui}/artifacts/key/revert-plan")
    page.get_by_text("dry run — nothing was changed").first.wait_for()
    page.screenshot(path=str(home / "dry-run-plan.png"))
    assert "Holds recorded by this run" not in page.inner_text("body")
