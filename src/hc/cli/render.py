"""Turning API items into output: a readable table, JSON (the item list, 2-space indent) or YAML.

Tables follow the Go CLI's column mappings (``[(json key, header), ...]``) and its ``-`` for a
missing value, but numbers print as integers (never ``1e+06``) and sizes as ``1.5 MiB``. Every
cell is reduced to one printable line, so a server cannot break the table or send terminal escapes.

``ItemStream`` renders a listing item by item in constant memory (a version can hold a million
files); ``render_items`` is the same output for a list already in memory.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from hc.config import OutputFormat

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "METADATA_COLUMNS",
    "REGISTRY_COLUMNS",
    "TABLE_SAMPLE_ROWS",
    "Column",
    "ItemStream",
    "format_cell",
    "format_size",
    "human_size",
    "page_line",
    "render_items",
    "render_metadata",
    "render_table",
    "to_json",
    "to_yaml",
]

Column = tuple[str, str]
CellFormatter = Callable[[object], str]

REGISTRY_COLUMNS: Final[Sequence[Column]] = (
    ("identifier", "Registry"),
    ("packageType", "Package Type"),
    ("registrySize", "Size"),
    ("type", "Registry Type"),
    ("description", "Description"),
    ("url", "Link"),
)
METADATA_COLUMNS: Final[Sequence[Column]] = (("key", "Key"), ("value", "Value"))

#: A streamed table sizes its columns from this many first rows (one page of hc's listings).
TABLE_SAMPLE_ROWS: Final = 1000

_MISSING: Final = "-"
_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_MAX_CELL: Final = 200
#: go-bytesize's format: "%.2f" and a 1024-based unit with no space.
_BYTESIZE_UNITS: Final = ("B", "KB", "MB", "GB", "TB", "PB", "EB")
_BYTESIZE_RE: Final = re.compile(r"(\d+(?:\.\d+)?)\s?(B|KB|MB|GB|TB|PB|EB)", re.IGNORECASE)


def human_size(size: int) -> str:
    """Bytes in 1024-based units: ``512 B``, ``1.5 MiB``, ``2.0 GiB``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_size(value: object) -> str:
    """A size cell: byte counts (numbers or digit strings) and go-bytesize strings (``1.50MB``, as
    Harness v1 lists send) become human sizes; any other text passes as it is."""
    if type(value) is str and value.isdecimal():  # v3 listings: one of these per file
        return human_size(int(value))
    if isinstance(value, bool):
        return format_cell(value)
    if isinstance(value, int):
        return human_size(value)
    if isinstance(value, float) and value.is_integer():
        return human_size(int(value))
    if isinstance(value, str):
        text = value.strip()
        if text.isdecimal():
            return human_size(int(text))
        match = _BYTESIZE_RE.fullmatch(text)
        if match:
            number, unit = float(match[1]), match[2].upper()
            return human_size(round(number * 1024 ** _BYTESIZE_UNITS.index(unit)))
    return format_cell(value)


def format_cell(value: object) -> str:
    """One table cell: ``-`` for missing/empty, integers in full, maps as sorted ``k=v,k2=v2``."""
    if type(value) is str:  # most cells: checked first, before the slower isinstance chain
        text = _one_line(value)
        return text if text else _MISSING
    if value is None:
        return _MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, Mapping):
        if not value:
            return _MISSING
        return _one_line(",".join(f"{k}={format_cell(v)}" for k, v in sorted(value.items(), key=_key_str)))
    if isinstance(value, list | tuple):
        if not value:
            return _MISSING
        return _one_line(", ".join(format_cell(v) for v in value))
    text = _one_line(str(value))
    return text if text else _MISSING


def render_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    formatters: Mapping[str, CellFormatter] | None = None,
) -> str:
    """Aligned columns under a header and a dashed rule; no trailing spaces."""
    stream = ItemStream(OutputFormat.TABLE, columns=columns, formatters=formatters, table_sample=None)
    return _joined(stream, rows)


class ItemStream:
    """Renders a listing one item at a time, in constant memory, exactly as ``render_items``
    renders the same items at once (tables: as long as they fit in the sample, see below).

    ``add(item)`` and ``close()`` return the text to write now (possibly empty); together they
    are the whole output, ending with a newline unless it is empty. Nothing is returned before the
    first item, so an error on the first page leaves no half-written document behind.

    - JSON: one array; each item is dumped with the array's indentation and the ``[`` / ``,`` /
      ``]`` come between them, so the text is byte for byte ``json.dumps(items, indent=2)``.
    - YAML: each item is the block sequence entry that dumping ``[item]`` makes; entries of a
      block sequence simply follow each other, so their concatenation is the dump of the list.
    - table: column widths come from the header and the first ``table_sample`` rows (every row
      when it is None), which are held back until then. Widths cannot be known before the last
      row without holding every row, and a fixed width would either waste a line on short paths or
      cut long ones; a later, wider cell widens only its own line (it is never cut).
    """

    def __init__(
        self,
        output_format: OutputFormat,
        *,
        columns: Sequence[Column] = (),
        formatters: Mapping[str, CellFormatter] | None = None,
        empty_message: str | None = None,
        table_sample: int | None = TABLE_SAMPLE_ROWS,
    ) -> None:
        self._format = output_format
        self._columns = columns
        self._formatters = formatters or {}
        self._cell_makers = [(key, self._formatters.get(key, format_cell)) for key, _ in columns]
        self._empty_message = empty_message
        self._sample_size = table_sample
        self._held: list[list[str]] = []
        self._widths: list[int] | None = None
        # Once the widths are known, one format string pads a whole row (what _line does).
        self._row_format: str | None = None
        self._count = 0

    @property
    def count(self) -> int:
        """Items added so far."""
        return self._count

    def add(self, item: Mapping[str, Any]) -> str:
        self._count += 1
        if self._row_format is not None:  # a table past its sample: the common case, first
            cells = [make(item.get(key)) for key, make in self._cell_makers]
            return self._row_format.format(*cells).rstrip() + "\n"
        first = self._count == 1
        if self._format is OutputFormat.JSON:
            return ("[\n" if first else ",\n") + _indent(_item_json(item))
        if self._format is OutputFormat.YAML:
            return _yaml_text([item])
        cells = [make(item.get(key)) for key, make in self._cell_makers]
        self._held.append(cells)
        if self._sample_size is not None and len(self._held) >= self._sample_size:
            return self._release()
        return ""

    def close(self) -> str:
        if self._format is OutputFormat.JSON:
            return "\n]\n" if self._count else "[]\n"
        if self._format is OutputFormat.YAML:
            return "" if self._count else "[]\n"
        if self._count == 0:
            return f"{self._empty_message}\n" if self._empty_message else ""
        return self._release() if self._widths is None else ""

    def _release(self) -> str:
        """Fix the column widths from what is held, and return the header and the held rows."""
        headers = [header for _, header in self._columns]
        widths = [len(header) for header in headers]
        for cells in self._held:
            widths = [max(width, len(cell)) for width, cell in zip(widths, cells, strict=True)]
        lines = [_line(headers, widths), _line(["-" * w for w in widths], widths)]
        lines.extend(_line(cells, widths) for cells in self._held)
        self._widths, self._held = widths, []
        self._row_format = "  ".join(f"{{:<{width}}}" for width in widths)
        return "\n".join(lines) + "\n"


def render_items(
    items: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[Column],
    output_format: OutputFormat,
    formatters: Mapping[str, CellFormatter] | None = None,
    empty_message: str | None = None,
) -> str:
    """Items in the chosen format. An empty table prints ``empty_message`` (or nothing)."""
    stream = ItemStream(
        output_format, columns=columns, formatters=formatters, empty_message=empty_message, table_sample=None
    )
    return _joined(stream, items)


def render_metadata(items: Sequence[Mapping[str, Any]], output_format: OutputFormat) -> str:
    """Metadata pairs (``{"key", "value"}`` items): a Key/Value table, or the list as JSON/YAML."""
    return render_items(
        items, columns=METADATA_COLUMNS, output_format=output_format, empty_message="No metadata found"
    )


def page_line(*, index: int, count: int, total: int | None) -> str:
    """The Go CLI's pagination footer (its page index is 0-based, as the server returns it)."""
    return f"Page {index} of {count} (Total: {total if total is not None else '?'})"


def to_json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


#: Flat items (every value a scalar) are dumped by the C encoder in one call, with the line break
#: and indentation as the item separator; json.dumps with ``indent`` uses the pure-Python encoder,
#: ten times slower (a listing prints a hundred thousand files).
_FLAT_ENCODER: Final = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, check_circular=False, separators=(",\n  ", ": ")
)
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _item_json(item: Mapping[str, Any]) -> str:
    """``to_json(item)``, the same text."""
    if item and type(item) is dict and all(type(v) in _SCALARS for v in item.values()):
        text = _FLAT_ENCODER.encode(item)  # '{"a": 1,\n  "b": 2}'
        return "{\n  " + text[1:-1] + "\n}"
    return to_json(item)


def to_yaml(value: object) -> str:
    return _yaml_text(value).rstrip("\n")


def _yaml_text(value: object) -> str:
    # Imported here: only YAML output needs it. libyaml's dumper, when built, is 5x faster than the
    # pure-Python one and writes the same text, except that it folds long double-quoted strings
    # (ones with control characters) at other places; both read back to the same value.
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(value, Dumper=dumper, sort_keys=True, default_flow_style=False, allow_unicode=True)


def _joined(stream: ItemStream, items: Iterable[Mapping[str, Any]]) -> str:
    text = "".join(stream.add(item) for item in items) + stream.close()
    return text.removesuffix("\n")


def _indent(text: str) -> str:
    # JSON text has a line break only where indentation put one (strings escape theirs).
    return "  " + text.replace("\n", "\n  ")


def _format_float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value.is_integer():
        return str(int(value))
    # Decimal of the shortest repr gives plain digits where str() would say 1e-07.
    return format(Decimal(repr(value)), "f")


def printable(text: str) -> str:
    """``text`` with every control or unprintable character written as its escape (``\\n``,
    ``\\x1b``): a path or message from a file system or a server stays one unambiguous line and
    cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def failure_line(path: str, error: str | None) -> str:
    """The line a failed item prints: ``error: <path>: <reason>``."""
    return f"error: {printable(path)}: {printable(error or 'failed')}"


def _one_line(text: str) -> str:
    # Nearly every cell is already one clean line: str.isprintable and a search for a space are
    # C loops, where the character-by-character repair below is a Python loop over every cell.
    if text.isprintable():
        clean = " ".join(text.split()) if " " in text else text
    else:
        clean = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return clean if len(clean) <= _MAX_CELL else clean[: _MAX_CELL - 1] + "…"


def _key_str(item: tuple[object, object]) -> str:
    return str(item[0])


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
