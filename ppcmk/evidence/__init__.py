"""The evidence pack: what an auditor asks to be shown about the customer-managed keys over a period.

`model` is the pack's content (the JSON file is it, as written); `changes` turns the audit chain into the
changes with their requesters, approvers and outcomes, and the drift findings watch recorded; `history`
builds the timelines (keys, environments, coverage, rotation pickups) from the estate read now, the
environments' lifecycle operations and the audit chain; `svg` and `html` draw and write the page; `files`
writes the pack (HTML, JSON, the PDF printed from the HTML by a headless Chromium) with its manifest. Pure
except `files`; gathering from the cloud is `tasks.evidence`.
"""
