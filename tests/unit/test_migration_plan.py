"""Plan lines: a round trip, refusal of malformed or unsafe lines, and the shard keys."""

from __future__ import annotations

import io
import json

import pytest

from hc.errors import UsageError
from hc.migration.plan import PlanItem, SourceEntry, read_plan
from hc.transfer import FileRef
from hc.transfer.shard import Shard


def _item(path: str = "dir/a.bin", *, kind: str = "GENERIC", version: str = "1.0") -> PlanItem:
    return PlanItem(
        mapping=1,
        artifact_type=kind,
        source_registry="repo",
        source=SourceEntry(package="app", version=version, path=path, size=5, md5="a" * 32, modified=12.5),
        destination_registry="org/dst",
        destination=FileRef(package="app", version=version, path=path),
        source_url="http://dav/repo/app/1.0/dir/a.bin",
    )


def test_a_plan_line_round_trips() -> None:
    item = _item()
    line = item.to_line()
    assert "\n" not in line
    data = json.loads(line)
    assert data["destination"] == {
        "registry": "org/dst",
        "package": "app",
        "version": "1.0",
        "path": "dir/a.bin",
    }
    assert data["sha256"] is None and data["md5"] == "a" * 32
    (back,) = read_plan(io.StringIO(line + "\n\n"), name="p")
    assert back == item


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("source"), "'source' and 'destination'"),
        (lambda d: d.update(size=-1), "'size'"),
        (lambda d: d.update(size=True), "'size'"),
        (lambda d: d.update(mapping="0"), "'mapping'"),
        (lambda d: d.update(sha256="xyz"), "'sha256' is not a 64-digit hex digest"),
        (lambda d: d["destination"].update(path="../../etc/passwd"), "p:1:"),
        (lambda d: d["destination"].update(path="/abs"), "p:1:"),
        (lambda d: d["source"].update(package=""), "'package' must be a non-empty string"),
        (lambda d: d["source"].update(modified="yesterday"), "epoch seconds"),
    ],
)
def test_bad_plan_lines_are_refused_with_their_line_number(mutate: object, message: str) -> None:
    data = _item().to_json()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(UsageError, match=message.replace("(", r"\(")) as caught:
        list(read_plan(io.StringIO(json.dumps(data)), name="p"))
    assert str(caught.value).startswith("p:1: ")
    with pytest.raises(UsageError, match="p:2: not a plan line"):
        list(read_plan(io.StringIO(_item().to_line() + "\n{oops\n"), name="p"))


def test_shard_keys_keep_a_generic_version_together() -> None:
    a, b = _item("x/a.bin"), _item("y/z/b.bin")
    assert a.shard_key == b.shard_key == "app/1.0"
    raw = _item("dir/sub/c.bin", kind="RAW")
    assert raw.shard_key == "dir/sub"
    assert _item("top.bin", kind="RAW").shard_key == "/"
    owners = [k for k in range(4) if Shard(k, 4).owns(a.shard_key)]
    assert len(owners) == 1  # exactly one shard migrates the version


def test_with_sha256_only_changes_the_digest() -> None:
    item = _item()
    changed = item.with_sha256("b" * 64)
    assert changed.source.sha256 == "b" * 64 and changed.destination == item.destination
    assert item.source.sha256 is None
