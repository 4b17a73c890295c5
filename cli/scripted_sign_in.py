"""A scripted person signs in the way a person does, for the demo's admins: the device-code flow at the
sandbox's authority, the code and then their UPN and password typed into its verification page (over HTTPS,
no browser). Their password comes from the sandbox's credentials file and goes nowhere else."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import httpx

from ppcmk.identity.signin import Prompt, SignIn
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.profile import SandboxProfile


def verification_page_prompt(ca_bundle: str, upn: str, password: str) -> Prompt:
    """A device-code prompt that opens the verification page, enters the code and signs in as `upn`."""

    def sign_in(verification_uri: str, user_code: str, expires_on: datetime) -> None:
        with httpx.Client(verify=ca_bundle) as browser:
            browser.post(verification_uri, data={"otc": user_code}).raise_for_status()
            done = browser.post(f"{verification_uri}/signin",
                                data={"otc": user_code, "login": upn, "passwd": password})
        if "You have signed in" not in done.text:
            raise CliError(f"{upn} could not sign in at {verification_uri} (HTTP {done.status_code})",
                           ExitCode.FAILED)

    return sign_in


def scripted_proof(signin: SignIn, profile: SandboxProfile, persona: str) -> str:
    """The sandbox persona's fresh token for the approvals app."""
    if not profile.credentials:
        raise CliError("the sandbox profile names no credentials file; restart the sandbox",
                       ExitCode.UNAVAILABLE)
    held = json.loads(Path(profile.credentials).read_text())["principals"][persona]
    return signin.device_code_token(verification_page_prompt(profile.ca, held["upn"], held["password"]),
                                    profile.ca)
