"""A proof is used once: each accepted token's `uti` is recorded as a Prefect Variable, which the server
creates once under a name, so of two runs (or two workers) offered the same token exactly one accepts it. A
record is kept until the token expires; older ones are removed as new ones are written."""

from __future__ import annotations

import hashlib
import time

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import VariableCreate
from prefect.exceptions import ObjectAlreadyExists

from ppcmk.errors import ProofRefused
from ppcmk.identity.proof import ProvenPerson

TAG = "ppcmk-proof"


def variable_name(token_id: str) -> str:
    """A name the server accepts, made from the token id (the id itself is not kept)."""
    return f"{TAG}-{hashlib.sha256(token_id.encode()).hexdigest()[:48]}"


def use_once(person: ProvenPerson, question: str) -> None:
    """Record the proof as used for `question`; `ProofRefused` when it was used before."""
    record = VariableCreate(name=variable_name(person.token_id), tags=[TAG],
                            value={"question": question, "person": person.object_id,
                                   "expires_at": person.expires_at})
    with get_client(sync_client=True) as client:
        try:
            client.create_variable(record)
        except ObjectAlreadyExists:
            raise ProofRefused("this proof was used before: sign in again for this question") from None
        _forget_expired(client)


def _forget_expired(client: SyncPrefectClient) -> None:
    now = time.time()
    listed = client.request("POST", "/variables/filter",
                            json={"variables": {"tags": {"all_": [TAG]}}, "limit": 200}).json()
    for variable in listed:
        value = variable.get("value") if isinstance(variable.get("value"), dict) else {}
        if float(value.get("expires_at", now)) < now:
            client.delete_variable_by_name(variable["name"])
