"""The pack as one self-contained HTML page: styles and pictures inline, no script, nothing fetched, so an
auditor opens it offline and a headless browser prints it to the PDF. Names before ids everywhere."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape

from ppcmk.evidence.model import Change, EstateRow, EvidencePack
from ppcmk.evidence.svg import MARK_COLOURS, SPAN_COLOURS, coverage_chart, timeline

# The sections, in order: (id, heading). The PDF has the same ones (the tests read them back).
SECTIONS = (("summary", "Summary"), ("chain", "Audit chain"), ("key-timelines", "Key timelines"),
            ("environment-timelines", "Environment timelines"), ("pickups", "Rotation pickup"),
            ("coverage-over-time", "Coverage over time"), ("changes", "Changes"), ("controls", "Controls"),
            ("roles", "Roles"), ("findings", "Drift findings"), ("estate", "Current estate"),
            ("files", "Files"))

STYLE = """
body{font:13px/1.45 system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;
border-bottom:1px solid #ccc;margin-top:28px}table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top;font-size:12px}
th{background:#f3f3f3}.bad{color:#a50f15;font-weight:600}.ok{color:#006d2c}.broken{border:2px solid #a50f15;
background:#fee;padding:8px}.mono{font-family:monospace;font-size:11px;word-break:break-all}.legend span{
display:inline-block;margin-right:12px}.swatch{display:inline-block;width:12px;height:10px;margin-right:4px}
dl{margin:0}dt{font-weight:600;display:inline}dd{display:inline;margin:0 8px 0 2px}
@media print{h2{break-before:page}section:first-of-type h2{break-before:auto}svg{break-inside:avoid}}
"""


def _t(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else ""


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], raw: frozenset[int] = frozenset()) -> str:
    """A table; cells are escaped unless their column is in `raw` (already HTML)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell if i in raw else escape(cell)}</td>" for i, cell in
                                    enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body or ''}</tbody></table>" if body else \
        "<p>None in the period.</p>"


def _section(anchor: str, heading: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(heading)}</h2>{body}</section>'


def _legend(colours: dict[str, str], names: dict[str, str]) -> str:
    items = "".join(f'<span><i class="swatch" style="background:{colours[k]}"></i>{escape(v)}</span>'
                    for k, v in names.items() if k in colours)
    return f'<p class="legend">{items}</p>'


def _approvers(change: Change) -> str:
    if not change.approvers:
        return "none"
    parts = []
    for approver in change.approvers:
        proof = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in approver.proof.items())
        parts.append(f"<div><b>{escape(approver.approver)}</b> {escape(approver.decision)} "
                     f"{escape(_t(approver.at))}<dl>{proof}</dl></div>")
    return "".join(parts)


def _summary(pack: EvidencePack) -> str:
    on_cmk = sum(row.on_cmk for row in pack.estate)
    verdict = '<b class="ok">intact</b>' if pack.chain.intact else '<b class="bad">FAILED verification</b>'
    facts = [("Tenant", pack.tenant_id), ("Subscription", pack.subscription_id), ("Scope", pack.scope.label),
             ("Period (cloud clock)", f"{_t(pack.period.start)} to {_t(pack.period.end)}"),
             ("Generated", _t(pack.generated_at)), ("Changes in the period", str(len(pack.changes))),
             ("Environments on a customer-managed key now", f"{on_cmk} of {len(pack.estate)}")]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    notes = "".join(f"<li>{escape(n)}</li>" for n in pack.notes)
    return f"<table>{rows}<tr><th>Audit chain</th><td>{verdict}</td></tr></table>" + \
        (f"<ul>{notes}</ul>" if notes else "")


def _chain(pack: EvidencePack) -> str:
    chain = pack.chain
    facts = table(["store", "entries", "last entry", "hash of the last entry"],
                  [[chain.store, str(chain.entries), str(chain.last_seq), chain.last_hash]])
    if chain.intact:
        return f'<p class="ok">The hash chain verifies: no entry was edited, removed or reordered.</p>{facts}'
    problems = "".join(f"<li>{escape(p)}</li>" for p in chain.problems)
    return (f'<div class="broken"><p class="bad">The audit chain FAILED verification: the record was altered '
            f"after it was written. The changes below are as the altered record reads.</p><ul>{problems}</ul>"
            f"</div>{facts}")


def _changes(pack: EvidencePack) -> str:
    return table(["when", "procedure", "run", "requester", "approvers and their proof", "outcome", "subjects",
                  "plan hash", "audit entries"],
                 [[f"{_t(c.started)} to {_t(c.finished)}", c.procedure, c.run, c.requester or "-",
                   _approvers(c), c.outcome, ", ".join(c.subjects),
                   f'<span class="mono">{escape(c.plan_hash)}</span>', ", ".join(str(s) for s in c.entries)]
                  for c in pack.changes],
                 raw=frozenset({4, 7}))


def _estate(pack: EvidencePack) -> str:
    """A row for each environment with something to say (a customer-managed key, a note, a state other than
    Enabled); the quiet rest by name in one paragraph: a table of thousands of rows takes a browser minutes
    to print, a paragraph milliseconds (their ids are in the JSON)."""
    def telling(row: EstateRow) -> bool:
        return row.on_cmk or bool(row.note) or row.state != "Enabled"

    told = [r for r in pack.estate if telling(r)]
    quiet = sorted((r.name for r in pack.estate if not telling(r)), key=str.lower)
    rows = table(["name", "type", "state", "key managed by", "policy", "key", "encrypted since", "note",
                  "id"],
                 [[r.name, r.sku, r.state, r.key_managed_by, r.policy, r.key, r.encrypted_since, r.note,
                   r.environment_id] for r in told])
    if not quiet:
        return rows
    return rows + (f"<p>{len(quiet)} more environment(s), enabled, on the Microsoft-managed key, nothing to "
                   f"note: {escape(', '.join(quiet))}.</p>")


def _body(pack: EvidencePack) -> dict[str, str]:
    spans = {"version": "key version in use", "hold": "hold", "cmk": "on a customer-managed key",
             "outage": "outage (link or unlink)", "lock": "locked"}
    marks = {"version": "version created", "rotation": "rotate run", "expiry": "expiry", "pickup": "pickup",
             "revert": "platform revert"}
    legend = _legend(SPAN_COLOURS, spans) + _legend(MARK_COLOURS, marks)
    return {
        "summary": _summary(pack),
        "chain": _chain(pack),
        "key-timelines": timeline(pack.keys, pack.period, "key-timeline") + legend,
        "environment-timelines": timeline(pack.environments, pack.period, "environment-timeline") + legend,
        "pickups": "<p>After each new key version, each environment on that key should take it up within "
                   "24 hours (documented).</p>" + table(
                       ["environment", "key", "version", "created", "due", "picked up", "status", "id"],
                       [[p.environment, p.key, p.version[:12], _t(p.created), _t(p.due), _t(p.picked_up),
                         p.status, p.environment_id] for p in pack.pickups]),
        "coverage-over-time": coverage_chart(pack.coverage, pack.period) + table(
            ["when", "on a customer-managed key", "not"],
            [[_t(p.at), str(p.on_cmk), str(p.not_on_cmk)] for p in pack.coverage]),
        "changes": _changes(pack),
        "controls": table(["object", "control", "value", "holds", "evidence"],
                          [[c.object, c.control, c.value, "yes" if c.ok else "NO", c.evidence]
                           for c in pack.controls]),
        "roles": table(["scope", "role", "held by", "object id"],
                       [[r.scope, r.role, r.principal, r.principal_id] for r in pack.roles]),
        "findings": table(["kind", "severity", "object", "open since", "resolved", "finding", "fix"],
                          [[f.kind, f.severity, f.object, _t(f.since), _t(f.resolved) or "still open",
                            f.message, f.fix] for f in pack.findings]),
        "estate": _estate(pack),
        "files": "<p>evidence.html (this page), evidence.json (the same content), evidence.pdf (this page "
                 "printed) and manifest.json, which lists each file with its size and SHA-256: check them "
                 "with <code>sha256sum</code> or <code>ppcmk evidence verify</code> to show the pack is as "
                 "it was written.</p>",
    }


def render(pack: EvidencePack) -> str:
    body = _body(pack)
    sections = "".join(_section(anchor, heading, body[anchor]) for anchor, heading in SECTIONS)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(pack.title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(pack.title)}</h1>{sections}</body></html>")
