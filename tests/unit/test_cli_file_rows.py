"""``hc artifact list --version``: how a v3 file entry becomes an output row."""

from __future__ import annotations

import pytest

from hc.cli.artifact import _file_item
from hc.errors import RemoteError
from hc.protocol.models import FileV3

DIGESTS = {"md5": "a" * 32, "sha1": "b" * 40, "sha256": "c" * 64, "sha512": "d" * 128}


def test_a_well_formed_entry_becomes_a_row() -> None:
    row = _file_item(FileV3(path="/dir/x.bin", name="x.bin", size="12", created_at=1700, **DIGESTS))
    assert row == {"path": "dir/x.bin", "name": "x.bin", "size": 12, **DIGESTS, "createdAt": 1700}


def test_digests_are_lower_cased_and_malformed_ones_are_null() -> None:
    row = _file_item(
        FileV3(path="/x", size="1", md5=" " + "A" * 32 + " ", sha1="b" * 39, sha256="g" * 64, sha512="")
    )
    assert (row["md5"], row["sha1"], row["sha256"], row["sha512"]) == ("a" * 32, None, None, None)
    odd = FileV3.from_json({"path": "/x", "size": "1", "md5": 5, "sha1": None, **{"sha256": "c" * 64}})
    row = _file_item(odd)
    assert (row["md5"], row["sha1"], row["sha256"]) == (None, None, "c" * 64)


def test_the_name_stands_in_for_a_missing_path_and_odd_times_are_null() -> None:
    row = _file_item(FileV3.from_json({"name": "only-name.txt", "size": " 3 ", "createdAt": "soon"}))
    assert (row["path"], row["name"], row["size"], row["createdAt"]) == (
        "only-name.txt",
        "only-name.txt",
        3,
        None,
    )


def test_a_size_that_is_not_a_number_is_a_clear_error() -> None:
    with pytest.raises(RemoteError, match="size of 'big'"):
        _file_item(FileV3(path="/x", size="big"))
