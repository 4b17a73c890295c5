"""What ppcmk relies on in Prefect beyond its documented API, one test each, so that an upgrade that changes
one of them fails here by name instead of breaking approvals or parking in silence. pyproject.toml bounds
Prefect to the minor version these hold for."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRunPolicy
from prefect.input import keyset_from_paused_state
from prefect.states import Suspended

from ppcmk.errors import ConfigError
from ppcmk_blocks import CmkTarget


def test_a_pause_keys_its_answer_by_the_state_name_and_the_key() -> None:
    """The approval commands read and write a suspended run's answer under these names."""
    assert keyset_from_paused_state(Suspended(pause_key="k")) == {"description": "suspended-k-description",
                                                                  "response": "suspended-k-response",
                                                                  "schema": "suspended-k-schema"}


def test_a_run_remembers_the_pause_keys_it_has_used() -> None:
    """A re-entered run tells an answered pause (and a parked run) from a fresh one by these keys."""
    assert "pause_keys" in FlowRunPolicy.model_fields


def test_a_block_is_validated_where_ppcmk_hooks_in() -> None:
    """`block_initialization` runs when a block is made; `Block.load` builds through `model_validate`."""
    made: list[str] = []

    class Probe(Block):
        value: str = "x"

        def block_initialization(self) -> None:
            made.append(self.value)

    Probe(value="made")
    assert made == ["made"]
    source = inspect.getsource(Block._from_block_document)
    assert ".model_validate(" in source


def test_a_stored_block_with_a_bad_value_fails_to_load_naming_the_field(prefect_backend: None) -> None:
    """A block written through the API (as the UI does) skips the Python validation; loading it must not."""
    vault = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
             "Microsoft.KeyVault/vaults/kv")
    CmkTarget(vault_id=vault, key_name="k", policy_name="p", resource_group="rg", geo="europe").save(
        "contract-target", overwrite=True)
    with get_client(sync_client=True) as client:
        stored = client.read_block_document_by_name("contract-target", CmkTarget.get_block_type_slug())
        client.update_block_document(stored.id, _with(stored, geo="mars"))
    with pytest.raises(ConfigError) as refused:
        CmkTarget.load("contract-target")
    assert refused.value.field == "geo"


def test_a_missing_block_is_refused_in_the_words_ppcmk_recognises(prefect_backend: None) -> None:
    """`named` tells a block that does not exist from a bad one by Prefect's message for it."""
    with pytest.raises(ValueError, match="Unable to find block document"):
        Block.load("ppcmk-target/contract-no-such-block")
    with pytest.raises(ConfigError, match="'contract-no-such-block': there is no such block"):
        CmkTarget.named("contract-no-such-block")


def _with(document: Any, **data: Any) -> Any:
    from prefect.client.schemas.actions import BlockDocumentUpdate

    return BlockDocumentUpdate(data={**document.data, **data})


def test_the_internals_the_command_line_and_parking_call_are_there() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.results import get_default_result_storage, get_result_store
    from prefect.server.api.server import create_app
    from prefect.utilities.asyncutils import run_coro_as_sync

    assert {"timeout", "at_exit"} <= set(inspect.signature(EventsWorker.drain_all).parameters)
    assert {"ephemeral", "final"} <= set(inspect.signature(create_app).parameters)
    assert callable(get_result_store) and callable(get_default_result_storage) and callable(run_coro_as_sync)
