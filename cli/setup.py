"""`ppcmk setup automations`: the notification automations (waiting for approval; failed or crashed) on the
Prefect server, through a notification block of the operator's choice. `ppcmk serve --notify` does the same.
"""

from __future__ import annotations

from typing import Annotated, cast
from uuid import UUID

import typer
from rich.console import Console

from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.prefect_api import prefect_api

console = Console()
setup_app = typer.Typer(help="Set up the Prefect server for ppcmk (notification automations).",
                        no_args_is_help=True)

WEBHOOK_BLOCK = "ppcmk-notify"
BLOCK_HELP = ("Notification block as TYPE/NAME, e.g. slack-webhook/ops, ms-teams-webhook/cmk, "
              "sendgrid-email/admins, custom-webhook/ppcmk-notify (create it in the UI: Blocks → +).")
WEBHOOK_HELP = f"Or a URL to POST JSON {{subject, text}} to (saved as block custom-webhook/{WEBHOOK_BLOCK})."


def checked_notification(block: str | None, webhook_url: str | None, option: str,
                         url_option: str) -> None:
    """One of a notification block TYPE/NAME (`option`) and a webhook URL (`url_option`), well formed;
    checked before anything is started or saved."""
    if (block is None) == (webhook_url is None):
        raise CliError(f"{option}: name one notification block (TYPE/NAME) or give {url_option}, not "
                       "both and not neither", ExitCode.USAGE)
    if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
        raise CliError(f"{url_option} {webhook_url}: use an http(s):// URL", ExitCode.USAGE)
    if block is not None and "/" not in block:
        raise CliError(f"{option} {block}: write it as TYPE/NAME, e.g. slack-webhook/ops",
                       ExitCode.USAGE)


def notification_block_id(block: str | None, webhook_url: str | None, option: str = "--notify",
                          url_option: str = "--notify-webhook-url") -> UUID:
    """The id of the chosen notification block (loaded to check it exists and can notify), or of the webhook
    block saved for `webhook_url`. Needs the Prefect API set (`using_prefect_api`)."""
    from prefect.blocks.core import Block
    from prefect.blocks.notifications import CustomWebhookNotificationBlock, NotificationBlock
    from prefect.client.orchestration import get_client

    checked_notification(block, webhook_url, option, url_option)
    if block is None:
        message = {"subject": "{{subject}}", "text": "{{body}}"}  # filled in by Prefect when it notifies
        webhook = CustomWebhookNotificationBlock.model_validate(
            {"name": "ppcmk", "url": webhook_url, "json_data": message})
        return cast(UUID, webhook.save(WEBHOOK_BLOCK, overwrite=True))
    try:
        loaded = Block.load(block)
    except ValueError as missing:
        raise CliError(f"{option} {block}: no such block on this Prefect server; create it in the UI (Blocks "
                       "→ +) or check the name with `prefect block ls`", ExitCode.USAGE) from missing
    if not isinstance(loaded, NotificationBlock):
        raise CliError(f"{option} {block}: not a notification block; use a webhook, Slack, Teams or e-mail "
                       "block", ExitCode.USAGE)
    block_type, name = block.split("/", 1)
    with get_client(sync_client=True) as client:
        return client.read_block_document_by_name(name, block_type_slug=block_type).id


def create_automations(block: str | None, webhook_url: str | None, option: str = "--notify",
                       url_option: str = "--notify-webhook-url") -> list[str]:
    from ppcmk_deployments.automations import ensure_automations

    with prefect_api() as client:
        block_id = notification_block_id(block, webhook_url, option, url_option)
        return ensure_automations(client, block_id)


@setup_app.command("automations")
def automations(
    block: Annotated[str | None, typer.Option("--block", help=BLOCK_HELP)] = None,
    webhook_url: Annotated[str | None, typer.Option(help=WEBHOOK_HELP)] = None,
) -> None:
    """Create (or update) the automations that notify when a ppcmk run waits for approval, and when one
    fails or crashes. Safe to run again."""
    names = create_automations(block, webhook_url, option="--block", url_option="--webhook-url")
    console.print(f"Automations ready: {', '.join(names)}.")
