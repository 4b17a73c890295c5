"""Terminal tables that fit the terminal without breaking a word: one line per row when there is room,
cells wrapped at spaces when there is not, and the least important columns left out (the caption names
them) when even a word would not fit. ARM ids are shortened to their last segment."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ppcmk.models.arm_ids import short_id

# what a column costs besides its text: one space of padding each side and its border
COLUMN_FRAME = 3
LEFT_OUT = "columns left out at this width"


def _header(column: str) -> str:
    return column.replace("_", " ")


def _longest_word(text: str) -> int:
    return max((len(word) for word in text.split()), default=0)


@dataclass
class FittedTable:
    """A table laid out for the width it is printed at. Each column is at least as wide as its longest
    word (`no_wrap` columns as their longest cell: ids); the room left goes to the columns that want
    more. When the columns do not all fit, those last in `priority` (default: the display order) are left
    out."""

    title: str
    columns: list[str]
    rows: list[list[str]]  # cells, rich markup allowed
    priority: list[str] | None = None
    no_wrap: frozenset[str] = frozenset()
    # how many columns (first in priority) a row is not read without: when they do not fit side by side,
    # each row is printed as a few lines instead, its values one under the other (`stacked`)
    essential: int = 1

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        if len(self.kept(width)) < min(self.essential, len(self.columns)):
            yield from self.stacked()
        else:
            yield self.table(width)

    def stacked(self) -> Iterator[Text | Padding]:
        """Each row as lines: its first two values on one line, then each other one as `column: value`,
        indented and wrapped at spaces like any text."""
        order = [self.columns.index(name) for name in self.priority or self.columns]
        head, rest = order[:2], order[2:]
        yield Text.from_markup(f"[bold]{escape(self.title)}[/]")
        for row in self.rows:
            yield Text.from_markup(" · ".join(row[i] for i in head if row[i]))
            for i in rest:
                if Text.from_markup(row[i]).plain:
                    line = Text.from_markup(f"{_header(self.columns[i])}: {row[i]}")
                    yield Padding(line, (0, 0, 0, 2))

    def _plain(self, index: int) -> Iterator[str]:
        yield self.columns[index]
        for row in self.rows:
            yield Text.from_markup(row[index]).plain

    def _least(self, index: int) -> int:
        """The width a column needs so no word (no id) in it breaks."""
        cells = list(self._plain(index))
        header = _longest_word(_header(cells[0]))
        if self.columns[index] in self.no_wrap:
            return max(header, *(len(cell) for cell in cells[1:]))
        return max(_longest_word(cell) for cell in cells)

    def kept(self, width: int) -> list[int]:
        """The indices of the columns shown at `width`, in display order."""
        named = self.priority or self.columns
        order = [self.columns.index(name) for name in named if name in self.columns]
        kept = order[:]
        while len(kept) > 1 and sum(self._least(i) + COLUMN_FRAME for i in kept) + 1 > width:
            kept.pop()
        return sorted(kept)

    def widths(self, kept: Sequence[int], width: int) -> list[int]:
        """Each kept column's width: its least, then the room left to the columns that want the least
        more first (their longest cell on one line), so short values stay on one line and long text
        wraps."""
        widths = [self._least(i) for i in kept]
        wants = [max(len(cell) for cell in self._plain(i)) for i in kept]
        spare = width - 1 - sum(w + COLUMN_FRAME for w in widths)
        for n in sorted(range(len(kept)), key=lambda n: wants[n] - widths[n]):
            given = max(0, min(wants[n] - widths[n], spare))
            widths[n] += given
            spare -= given
        return widths

    def table(self, width: int) -> Table:
        kept = self.kept(width)
        left_out = [_header(self.columns[i]) for i in range(len(self.columns)) if i not in kept]
        caption = f"({LEFT_OUT}: {', '.join(left_out)}; --json shows them)" if left_out else None
        table = Table(title=self.title, title_justify="left", caption=caption, caption_justify="left")
        for index, column_width in zip(kept, self.widths(kept, width), strict=True):
            name = self.columns[index]
            table.add_column(_header(name), width=column_width, overflow="fold",
                             no_wrap=name in self.no_wrap)
        for row in self.rows:
            table.add_row(*(row[i] for i in kept))
        return table


def rows_table(title: str, rows: list[dict[str, Any]], columns: list[str] | None = None,
               priority: list[str] | None = None, essential: int = 1) -> FittedTable:
    """One row per dictionary; `columns` picks and orders them (default: all), `priority` says which go
    first when not all fit (default: the first most important; see `FittedTable`)."""
    columns = columns or list(dict.fromkeys(name for row in rows for name in row))
    cells = [[escape(short_id(row.get(column, ""))) for column in columns] for row in rows]
    return FittedTable(title, columns, cells, priority, essential=essential)
