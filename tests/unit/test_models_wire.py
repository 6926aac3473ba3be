"""The wire models' JSON conversions: what the server sends is what the client reads back.

``from_json`` and ``json_rows`` have fast paths (listings convert a hundred thousand items); these
tests pin them to what the dataclass constructor and ``to_json`` give.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from hc.protocol import models
from hc.protocol.models import FileDetailV1, FileV3, PageV3, RegistryV1

WIRE_CLASSES = [
    cls
    for cls in vars(models).values()
    if isinstance(cls, type) and issubclass(cls, models._Wire) and dataclasses.is_dataclass(cls)
]

FILE = FileV3(
    id="7",
    name="a b.txt",
    path="/dir/a b.txt",
    size="12",
    md5="0" * 32,
    sha1="1" * 40,
    sha256="2" * 64,
    sha512="3" * 128,
    created_at=1_700_000_000_123,
    download_url="http://127.0.0.1:1/pkg/local/reg/files/p/v/dir/a%20b.txt",
)


def _row(file: FileV3) -> tuple[Any, ...]:
    return tuple(getattr(file, f.name) for f in dataclasses.fields(file))


def _constructed(cls: Any, data: dict[str, Any]) -> Any:
    """What from_json must equal: the constructor, given the fields whose wire keys are present."""
    fields = dataclasses.fields(cls)
    return cls(**{f.name: data[f.metadata["json"]] for f in fields if f.metadata["json"] in data})


def test_every_wire_model_reads_what_its_constructor_would_build() -> None:
    assert len(WIRE_CLASSES) >= 10
    for cls in WIRE_CLASSES:
        body = json.loads(json.dumps(cls().to_json()))
        assert cls.from_json(body) == _constructed(cls, body), cls.__name__
        assert cls.from_json(body).to_json() == body, cls.__name__
        assert cls.from_json({}) == cls(), cls.__name__


def test_from_json_takes_wire_names_and_defaults_missing_keys() -> None:
    parsed = FileV3.from_json({"path": "/x", "createdAt": 5, "downloadUrl": None, "unknown": 1})
    assert parsed == FileV3(path="/x", created_at=5)
    assert FileV3.from_json(FILE.to_json()) == FILE


def test_from_json_gives_each_object_its_own_default_list() -> None:
    first, second = FileDetailV1.from_json({}), FileDetailV1.from_json({})
    assert first.checksums == [] and first.checksums is not second.checksums
    assert FileDetailV1.from_json({"checksums": ["MD5: ab"]}).checksum("md5") == "ab"


def test_from_json_keeps_a_null_the_server_sent() -> None:
    # as the constructor does: a key present with null is None, not the default
    assert FileV3.from_json({"size": None}).size is None
    assert RegistryV1.from_json({"packageType": None}).package_type is None


def test_to_json_leaves_out_none_and_uses_wire_names() -> None:
    body = FileV3(path="/x", created_at=None, download_url=None).to_json()
    assert "createdAt" not in body and "downloadUrl" not in body
    assert body["path"] == "/x" and body["sha256"] == ""


def test_json_rows_is_to_json_of_each_item_in_the_same_key_order() -> None:
    bare = FileV3(id="8", path="/y", created_at=None, download_url=None)
    rows = FileV3.json_rows([_row(FILE), _row(bare)])
    assert rows == [FILE.to_json(), bare.to_json()]
    assert [list(r) for r in rows] == [list(FILE.to_json()), list(bare.to_json())]
    assert json.dumps(rows) == json.dumps([FILE.to_json(), bare.to_json()])


def test_json_rows_refuses_a_row_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="expected 10"):
        FileV3.json_rows([_row(FILE)[:-1]])


def test_page_of_json_rows_renders_as_page_of_objects() -> None:
    as_objects: PageV3[FileV3] = PageV3(items=[FILE], page=0, size=1, has_more=False)
    as_rows: PageV3[Any] = PageV3(items=FileV3.json_rows([_row(FILE)]), page=0, size=1, has_more=False)
    assert json.dumps(as_rows.to_json()) == json.dumps(as_objects.to_json())
    assert PageV3.from_json(as_rows.to_json(), item=FileV3.from_json).items == [FILE]
