"""How a person signs in for a proof, the same way for the sandbox and a real tenant: what a question tells
them (`SignIn`: the tenant, its authority, the approvals scope, the public client), and the two ways to get
the token from a terminal: a device code (azure-identity's DeviceCodeCredential: open the address, enter the
code, sign in, on any device) or the Azure CLI's own login (`az account get-access-token`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from ppcmk.errors import ConfigError

Prompt = Callable[[str, str, datetime], None]  # verification address, code, when it expires
SIGN_IN_TIMEOUT_S = 300


class SignIn(BaseModel):
    """What a person needs to sign in for a proof of one question (nothing secret)."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    authority: str  # host (login.microsoftonline.com) or, for the sandbox, its origin
    instance_discovery: bool  # off for an authority Microsoft does not know (the sandbox's)
    scope: str  # e.g. api://contoso-approvals/Approve
    client_id: str  # the public client people sign in with

    def device_code_token(self, prompt: Prompt, ca_bundle: str | None = None) -> str:
        """The person's token after they sign in with the device code `prompt` shows them."""
        from azure.identity import DeviceCodeCredential

        trust = {"connection_verify": ca_bundle} if ca_bundle else {}
        credential = DeviceCodeCredential(
            client_id=self.client_id, tenant_id=self.tenant_id, authority=self.authority,
            disable_instance_discovery=not self.instance_discovery, prompt_callback=prompt,
            timeout=SIGN_IN_TIMEOUT_S, **trust)
        return credential.get_token(self.scope).token

    def azure_cli_token(self) -> str:
        """The token of the person signed in to the Azure CLI (`az login`). The approvals app must list the
        Azure CLI among its authorized client applications for this scope (docs/AZURE.md)."""
        az = shutil.which("az")
        if az is None:
            raise ConfigError("--azure-cli", "the Azure CLI (az) is not installed here",
                              "sign in with a device code instead (leave out --azure-cli)")
        done = subprocess.run([az, "account", "get-access-token", "--scope", self.scope, "--tenant",
                               self.tenant_id, "--output", "json"], capture_output=True, text=True,
                              timeout=60, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise ConfigError("--azure-cli", f"az could not get a token for {self.scope}: {last}",
                              f"run `az login --tenant {self.tenant_id}`, or use a device code")
        return str(json.loads(done.stdout)["accessToken"])
