"""Turning API items into output: a readable table, JSON (the item list, 2-space indent) or YAML.

Tables follow the Go CLI's column mappings (``[(json key, header), ...]``) and its ``-`` for a
missing value, but numbers print as integers (never ``1e+06``) and sizes as ``1.5 MiB``. Every
cell is reduced to one printable line, so a server cannot break the table or send terminal escapes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import yaml

from hc.config import OutputFormat

__all__ = [
    "METADATA_COLUMNS",
    "REGISTRY_COLUMNS",
    "Column",
    "format_cell",
    "format_size",
    "human_size",
    "page_line",
    "render_items",
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

_MISSING: Final = "-"
_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_MAX_CELL: Final = 200
#: go-bytesize's format: "%.2f" and a 1024-based unit with no space.
_BYTESIZE_UNITS: Final = ("B", "KB", "MB", "GB", "TB", "PB", "EB")
_BYTESIZE_RE: Final = re.compile(r"(\d+(?:\.\d+)?)\s?(B|KB|MB|GB|TB|PB|EB)", re.IGNORECASE)


def human_size(size: int) -> str:
    """Bytes in 1024-based units: ``512 B``, ``1.5 MiB``, ``2.0 GiB``."""
    if size < 0:
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
    if isinstance(value, bool):
        return format_cell(value)
    if isinstance(value, int):
        return human_size(value)
    if isinstance(value, float) and value.is_integer():
        return human_size(int(value))
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return human_size(int(text))
        match = _BYTESIZE_RE.fullmatch(text)
        if match:
            number, unit = float(match[1]), match[2].upper()
            return human_size(round(number * 1024 ** _BYTESIZE_UNITS.index(unit)))
    return format_cell(value)


def format_cell(value: object) -> str:
    """One table cell: ``-`` for missing/empty, integers in full, maps as sorted ``k=v,k2=v2``."""
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
    formatters = formatters or {}
    headers = [header for _, header in columns]
    body = [[formatters.get(key, format_cell)(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *body, strict=False)]
    lines = [_line(headers, widths), _line(["-" * w for w in widths], widths)]
    lines.extend(_line(cells, widths) for cells in body)
    return "\n".join(lines)


def render_items(
    items: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[Column],
    output_format: OutputFormat,
    formatters: Mapping[str, CellFormatter] | None = None,
    empty_message: str | None = None,
) -> str:
    """Items in the chosen format. An empty table prints ``empty_message`` (or nothing)."""
    if output_format is OutputFormat.JSON:
        return to_json(items)
    if output_format is OutputFormat.YAML:
        return to_yaml(items)
    if not items:
        return empty_message or ""
    return render_table(items, columns, formatters=formatters)


def page_line(*, index: int, count: int, total: int | None) -> str:
    """The Go CLI's pagination footer (its page index is 0-based, as the server returns it)."""
    return f"Page {index} of {count} (Total: {total if total is not None else '?'})"


def to_json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def to_yaml(value: object) -> str:
    return yaml.safe_dump(value, sort_keys=True, default_flow_style=False, allow_unicode=True).rstrip("\n")


def _format_float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value.is_integer():
        return str(int(value))
    # Decimal of the shortest repr gives plain digits where str() would say 1e-07.
    return format(Decimal(repr(value)), "f")


def _one_line(text: str) -> str:
    clean = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return clean if len(clean) <= _MAX_CELL else clean[: _MAX_CELL - 1] + "…"


def _key_str(item: tuple[object, object]) -> str:
    return str(item[0])


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
