"""Block names given on the command line (`--connection`, `--target`, `--param connection=...`): each is
checked to exist before anything runs, and a missing one is refused naming the option."""

from __future__ import annotations

from typing import TypeVar, cast

from ppcmk.errors import ConfigError
from ppcmk_blocks import CmkConnection, CmkTarget
from ppcmk_cli.exit_codes import CliError, ExitCode

BlockT = TypeVar("BlockT", bound=CmkConnection | CmkTarget)

# the runbook parameters that name a block, and its type
BLOCK_PARAMETERS: dict[str, type[CmkConnection | CmkTarget]] = {
    "connection": CmkConnection, "kv_connection": CmkConnection, "pp_connection": CmkConnection,
    "target": CmkTarget,
}


def existing_block(block_type: type[BlockT], name: str, option: str) -> BlockT:
    """The saved block `name` (validated); missing or invalid, a usage error naming `option`."""
    try:
        return cast(BlockT, block_type.named(name))
    except ConfigError as bad:
        detail = str(bad).removeprefix(f"{block_type.__name__} block {name!r}: ")
        raise CliError(f"{option} {name}: {detail}", ExitCode.USAGE) from None
