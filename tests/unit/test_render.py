"""hc.cli.render: sizes, cells, tables, JSON and YAML output."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from hc.cli.registry import RegistryListing, render_registries
from hc.cli.render import (
    METADATA_COLUMNS,
    REGISTRY_COLUMNS,
    format_cell,
    format_size,
    human_size,
    render_items,
    render_table,
)
from hc.config import OutputFormat


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (int(1.5 * 1024**2), "1.5 MiB"),
        (5 * 1024**3, "5.0 GiB"),
        (1024**4, "1.0 TiB"),
        (3 * 1024**6, "3.0 EiB"),
        (2000 * 1024**6, "2000.0 EiB"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1572864, "1.5 MiB"),
        ("1572864", "1.5 MiB"),
        (1572864.0, "1.5 MiB"),
        ("1.50MB", "1.5 MiB"),  # go-bytesize, as Harness v1 listings send
        ("512.00B", "512 B"),
        ("0.00B", "0 B"),
        ("about 3 blocks", "about 3 blocks"),  # other text is shown as it is
        (None, "-"),
        ("", "-"),
    ],
)
def test_format_size(value: object, text: str) -> None:
    assert format_size(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        ("", "-"),
        ({}, "-"),
        ([], "-"),
        (1000000, "1000000"),
        (1e6, "1000000"),
        (12345678901234567890, "12345678901234567890"),
        (1e20, "100000000000000000000"),
        (1e-7, "0.0000001"),
        (2.5, "2.5"),
        (True, "true"),
        ({"os": "linux", "arch": "amd64"}, "arch=amd64,os=linux"),
        (["a", "b"], "a, b"),
        ("two\nlines\tand\x1b[31mescape", "two lines and [31mescape"),
        ("  spaced   out  ", "spaced out"),
        ("é {braces} ok", "é {braces} ok"),
        ("no\u00a0break\u3000wide", "no break wide"),  # Unicode spaces are spaces too
        ("\x00", "-"),
    ],
)
def test_format_cell(value: object, text: str) -> None:
    assert format_cell(value) == text


def test_long_cells_are_clipped_to_one_short_line() -> None:
    cell = format_cell("x" * 1000)
    assert len(cell) == 200 and cell.endswith("…")


REGISTRIES: list[dict[str, Any]] = [
    {
        "identifier": "r1",
        "packageType": "GENERIC",
        "registrySize": "1572864",
        "type": "VIRTUAL",
        "url": "http://127.0.0.1:1/pkg/local/r1",
    },
    {
        "identifier": "docker-main",
        "packageType": "DOCKER",
        "registrySize": 0,
        "type": "VIRTUAL",
        "description": "images",
        "url": "http://x/pkg/a/docker-main",
        "extra": {"ignored": True},
    },
]


def test_registry_table_has_the_go_columns_and_aligns() -> None:
    table = render_table(REGISTRIES, REGISTRY_COLUMNS, formatters={"registrySize": format_size})
    lines = table.splitlines()
    assert [h.strip() for h in lines[0].split("  ") if h.strip()] == [
        "Registry",
        "Package Type",
        "Size",
        "Registry Type",
        "Description",
        "Link",
    ]
    assert set(lines[1]) <= {"-", " "}
    assert "1.5 MiB" in lines[2] and " - " in lines[2]  # missing description
    assert "0 B" in lines[3] and "images" in lines[3]
    # Columns line up: every row has its Link where the header has it.
    link_at = lines[0].index("Link")
    assert lines[2][link_at:].startswith("http://127.0.0.1:1/pkg/local/r1")
    assert lines[3][link_at:].startswith("http://x/pkg/a/docker-main")
    assert all(line == line.rstrip() for line in lines)


def test_json_is_the_item_list_with_two_space_indent() -> None:
    text = render_items(REGISTRIES, columns=REGISTRY_COLUMNS, output_format=OutputFormat.JSON)
    assert json.loads(text) == REGISTRIES
    assert text.splitlines()[1].startswith("  {")


def test_yaml_is_the_item_list() -> None:
    text = render_items(REGISTRIES, columns=REGISTRY_COLUMNS, output_format=OutputFormat.YAML)
    assert yaml.safe_load(text) == REGISTRIES


def test_empty_lists() -> None:
    assert render_items([], columns=METADATA_COLUMNS, output_format=OutputFormat.JSON) == "[]"
    assert yaml.safe_load(render_items([], columns=METADATA_COLUMNS, output_format=OutputFormat.YAML)) == []
    table = render_items(
        [], columns=METADATA_COLUMNS, output_format=OutputFormat.TABLE, empty_message="No metadata found"
    )
    assert table == "No metadata found"


def test_one_page_listing_prints_the_go_page_line() -> None:
    from hc.api import RegistryPage

    page = RegistryPage(items=[], index=1, count=3, total=25, size=10)
    text = render_registries(RegistryListing(items=REGISTRIES, page=page), OutputFormat.TABLE)
    assert text.splitlines()[-1] == "Page 1 of 3 (Total: 25)"
    # JSON never carries the page line (as in the Go CLI)
    assert json.loads(render_registries(RegistryListing(items=REGISTRIES, page=page), OutputFormat.JSON))
    empty = RegistryPage(items=[], index=5, count=3, total=25, size=10)
    assert (
        render_registries(RegistryListing(items=[], page=empty), OutputFormat.TABLE)
        == "Page 5 of 3 (Total: 25)"
    )
    assert render_registries(RegistryListing(items=[]), OutputFormat.TABLE) == "No registries found"


def test_a_failure_line_escapes_control_characters_so_it_stays_one_line() -> None:
    from hc.cli.render import failure_line, printable

    assert (
        failure_line("src/a\nb.txt", "refused: 'a\x1b[31m'") == "error: src/a\\nb.txt: refused: 'a\\x1b[31m'"
    )
    assert failure_line("ok.txt", None) == "error: ok.txt: failed"
    assert printable("naïve ü.txt") == "naïve ü.txt"  # printable non-ASCII stays as it is
