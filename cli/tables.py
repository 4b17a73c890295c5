"""Terminal tables for row dictionaries (flow outcomes, plan tables): one line per row, ARM ids shortened."""

from __future__ import annotations

import re
from typing import Any

from rich.table import Table

ARM_ID = re.compile(r"/subscriptions/[^\s,;()]+/([^/\s,;()]+)")


def short(value: object) -> str:
    """ARM ids shortened to their last segment, so tables fit a terminal."""
    return ARM_ID.sub(r"\1", str(value))


def rows_table(title: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Table:
    """One line per row; `columns` picks and orders them (default: all)."""
    table = Table(title=title, title_justify="left")
    columns = columns or list(dict.fromkeys(name for row in rows for name in row))
    cells = [[short(row.get(column, "")) for column in columns] for row in rows]
    for index, column in enumerate(columns):
        # earlier columns keep (up to 24 characters of) their width; the last one wraps
        last = index == len(columns) - 1
        widest = max([len(column), *(len(line[index]) for line in cells)])
        table.add_column(column.replace("_", " "), overflow="fold" if last else "ellipsis", no_wrap=not last,
                         max_width=None if last else min(widest, 24))
    for line in cells:
        table.add_row(*line)
    return table
