"""Listings written while they arrive: the same text as rendering them at once, in constant memory."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from hc.cli.artifact import ArtifactListing, write_listing
from hc.cli.render import ItemStream, render_items
from hc.config import OutputFormat
from hc.errors import NotFound

COLUMNS = (("path", "File"), ("size", "Size"))

ITEMS: list[dict[str, Any]] = [
    {"path": "a.txt", "size": 1, "tags": ["x", "y"], "meta": {"k": "v"}},
    {"path": "dir/é long name.txt", "size": 1500, "note": 'quotes " and: colons', "empty": None},
    {"path": "b", "size": 0, "nested": {"list": [{"a": 1}], "flag": True, "text": "line\nbreak"}},
]


def _streamed(stream: ItemStream, items: list[dict[str, Any]]) -> str:
    return "".join(stream.add(item) for item in items) + stream.close()


@pytest.mark.parametrize("output_format", [OutputFormat.JSON, OutputFormat.YAML, OutputFormat.TABLE])
@pytest.mark.parametrize("count", [0, 1, 3])
def test_a_stream_writes_what_rendering_the_whole_list_writes(
    output_format: OutputFormat, count: int
) -> None:
    items = ITEMS[:count]
    whole = render_items(items, columns=COLUMNS, output_format=output_format, empty_message="No files")
    streamed = _streamed(ItemStream(output_format, columns=COLUMNS, empty_message="No files"), items)
    assert streamed == whole + "\n"


def test_streamed_json_and_yaml_are_the_documents_of_the_list() -> None:
    assert json.loads(_streamed(ItemStream(OutputFormat.JSON), ITEMS)) == ITEMS
    assert yaml.safe_load(_streamed(ItemStream(OutputFormat.YAML), ITEMS)) == ITEMS
    assert json.loads(_streamed(ItemStream(OutputFormat.JSON), [])) == []


def test_json_and_yaml_items_are_written_as_they_come() -> None:
    for output_format in (OutputFormat.JSON, OutputFormat.YAML):
        stream = ItemStream(output_format)
        assert ITEMS[0]["path"] in stream.add(ITEMS[0])


def test_a_table_is_sized_by_its_first_rows_and_never_cuts_a_later_cell() -> None:
    stream = ItemStream(OutputFormat.TABLE, columns=COLUMNS, table_sample=2)
    rows = [{"path": "a", "size": 1}, {"path": "bb", "size": 2}, {"path": "a-much-longer-path", "size": 3}]
    assert stream.add(rows[0]) == ""  # held back until the widths are known
    head = stream.add(rows[1])
    assert head.splitlines() == ["File  Size", "----  ----", "a     1", "bb    2"]
    assert stream.add(rows[2]) == "a-much-longer-path  3\n"
    assert stream.close() == ""


def test_table_rows_after_the_sample_are_aligned_like_the_sample() -> None:
    columns = (("path", "File"), ("size", "Size"), ("note", "Note"))
    rows = [{"path": f"{{p{i}}}", "size": i, "note": "x" if i % 2 else None} for i in range(7)]
    rows.append({"path": "q", "size": "", "note": ""})
    whole = render_items(rows, columns=columns, output_format=OutputFormat.TABLE)
    streamed = _streamed(ItemStream(OutputFormat.TABLE, columns=columns, table_sample=3), rows)
    assert streamed == whole + "\n"
    assert streamed.splitlines()[-1] == "q     -     -"


def test_an_empty_table_prints_its_message_or_nothing() -> None:
    assert ItemStream(OutputFormat.TABLE, columns=COLUMNS, empty_message="No files found").close() == (
        "No files found\n"
    )
    assert ItemStream(OutputFormat.TABLE, columns=COLUMNS).close() == ""


async def _items(count: int, *, fail_after: int | None = None) -> AsyncIterator[dict[str, Any]]:
    for index in range(count):
        if index == fail_after:
            raise NotFound("gone")
        yield {"path": f"d/f{index:05d}.txt", "size": index, "sha256": "0" * 64, "createdAt": 0}


@pytest.mark.parametrize("output_format", [OutputFormat.JSON, OutputFormat.YAML, OutputFormat.TABLE])
async def test_write_listing_writes_in_pieces_that_add_up_to_the_document(
    output_format: OutputFormat,
) -> None:
    pieces: list[str] = []
    count = await write_listing(ArtifactListing("files", _items(3000)), output_format, write=pieces.append)
    assert count == 3000
    assert len(pieces) > 1  # not held until the end
    text = "".join(pieces)
    if output_format is OutputFormat.TABLE:
        lines = text.splitlines()
        assert lines[0].split() == ["File", "Size", "SHA-256", "Created"]
        assert len(lines) == 2 + 3000 and lines[-1].startswith("d/f02999.txt")
    else:
        loaded = json.loads(text) if output_format is OutputFormat.JSON else yaml.safe_load(text)
        assert [item["path"] for item in loaded] == [f"d/f{i:05d}.txt" for i in range(3000)]


@pytest.mark.parametrize("output_format", [OutputFormat.JSON, OutputFormat.YAML, OutputFormat.TABLE])
async def test_a_listing_that_fails_on_its_first_page_writes_nothing(output_format: OutputFormat) -> None:
    pieces: list[str] = []
    with pytest.raises(NotFound):
        await write_listing(
            ArtifactListing("files", _items(10, fail_after=5)), output_format, write=pieces.append
        )
    assert pieces == []


async def test_a_one_page_table_ends_with_the_go_footer() -> None:
    pieces: list[str] = []
    await write_listing(
        ArtifactListing("files", _items(0), has_more=False), OutputFormat.TABLE, write=pieces.append
    )
    assert "".join(pieces) == "Last page\n"


def test_streamed_json_is_byte_for_byte_json_dumps_of_the_list() -> None:
    flat: list[dict[str, Any]] = [
        {"path": 'a, "b": c\n', "size": 7, "sha256": None, "ok": True, "ratio": 1.5, "é": "ü"},
        {"z": -0.0, "a": 1e20, "nan": float("nan")},
        {"only": "one"},
    ]
    for items in (flat, ITEMS, flat + ITEMS + [{}]):
        expected = json.dumps(items, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        assert _streamed(ItemStream(OutputFormat.JSON), items) == expected
