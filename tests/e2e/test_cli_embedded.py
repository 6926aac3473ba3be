"""``hc registry`` end to end against the embedded default: no configuration at all.

Every command starts the embedded registry in-process (under the sandbox's HC_HOME) and stops it
again, exactly as a user without a Harness account would run hc.
"""

from __future__ import annotations

import json

import pytest
import yaml

from hc.api import connect
from hc.cli.context import open_target
from hc.cli.registry import list_registries
from hc.config import GlobalFlags, load_settings

from .conftest import HcRunner, Sandbox, lines


def _notice(sandbox: Sandbox) -> str:
    return f"hc: no Harness account configured; using the embedded registry at {sandbox.hc_home}"


def test_registry_lifecycle_in_every_format(hc: HcRunner, sandbox: Sandbox) -> None:
    created = hc("registry", "create", "r1", "--package-type", "generic", "--description", "first one")
    assert created.exit_code == 0, created
    assert lines(created.stderr) == [_notice(sandbox)]
    header, _rule, row = lines(created.stdout)
    assert header.split() == [
        "Registry",
        "Package",
        "Type",
        "Size",
        "Registry",
        "Type",
        "Description",
        "Link",
    ]
    assert row.split()[:2] == ["r1", "GENERIC"]
    assert "first one" in row
    assert sandbox.hc_home.is_dir()

    table = hc("registry", "list")
    assert table.exit_code == 0, table
    assert [line.split()[0] for line in lines(table.stdout)[2:]] == ["r1"]

    as_json = hc("registry", "list", "--format", "json")
    items = json.loads(as_json.stdout)
    assert [(i["identifier"], i["packageType"], i["description"]) for i in items] == [
        ("r1", "GENERIC", "first one")
    ]
    assert as_json.stdout.startswith("[\n  {")

    as_yaml = hc("--format", "yaml", "registry", "list")
    # the same items (the link names this run's port, which changes between commands)
    assert [{**i, "url": None} for i in yaml.safe_load(as_yaml.stdout)] == [{**i, "url": None} for i in items]

    got = hc("reg", "get", "r1", "--format", "json")
    assert got.exit_code == 0, got
    (item,) = json.loads(got.stdout)
    assert (item["identifier"], item["packageType"], item["type"]) == ("r1", "GENERIC", "VIRTUAL")
    assert hc("registry", "get", "r1").stdout.splitlines()[2].split()[0] == "r1"

    deleted = hc("registry", "delete", "r1", "--yes")
    assert deleted.exit_code == 0, deleted
    assert deleted.stdout.strip() == "Deleted registry 'r1'"
    empty = hc("registry", "list")
    assert (empty.exit_code, empty.stdout.strip()) == (0, "No registries found")
    assert json.loads(hc("registry", "list", "--format", "json").stdout) == []


def test_quiet_suppresses_the_notice(hc: HcRunner) -> None:
    result = hc("-q", "registry", "list")
    assert result.exit_code == 0, result
    assert result.stderr == ""


def test_verbose_explains_the_target(hc: HcRunner) -> None:
    result = hc("registry", "list", "-v")
    assert result.exit_code == 0, result
    assert "hc: no API URL configured" in result.stderr
    assert "GET " in result.stderr  # request lines, never headers
    assert "x-api-key" not in result.stderr.lower()


def test_unknown_registry_is_exit_1_with_its_name(hc: HcRunner) -> None:
    for args in (
        ("registry", "get", "nope"),
        ("registry", "delete", "nope", "--yes"),
        ("registry", "metadata", "get", "--registry", "nope"),
    ):
        result = hc(*args)
        assert result.exit_code == 1, result
        (line,) = [x for x in lines(result.stderr) if x.startswith("error:")]
        assert line.startswith("error: registry 'nope' not found"), line


def test_creating_twice_is_a_conflict(hc: HcRunner) -> None:
    assert hc("registry", "create", "dup", "--package-type", "GENERIC").exit_code == 0
    again = hc("registry", "create", "dup", "--package-type", "GENERIC")
    assert again.exit_code == 1
    assert lines(again.stderr)[-1].startswith("error: conflict")


def test_metadata_set_get_delete(hc: HcRunner) -> None:
    assert hc("registry", "create", "meta", "--package-type", "GENERIC").exit_code == 0

    result = hc("registry", "metadata", "set", "--registry", "meta", "--metadata", "team:core, tier:gold")
    assert result.exit_code == 0, result
    assert result.stdout.strip() == "Set 2 metadata pairs on registry 'meta'"

    got = hc("registry", "metadata", "get", "--registry", "meta", "--format", "json")
    assert got.exit_code == 0, got
    assert sorted((m["key"], m["value"]) for m in json.loads(got.stdout)) == [
        ("team", "core"),
        ("tier", "gold"),
    ]

    table = hc("registry", "metadata", "get", "--registry", "meta")
    assert lines(table.stdout)[0].split() == ["Key", "Value"]
    assert sorted(line.split() for line in lines(table.stdout)[2:]) == [["team", "core"], ["tier", "gold"]]

    removed = hc("registry", "metadata", "delete", "--registry", "meta", "--metadata", "team:core")
    assert removed.exit_code == 0, removed
    after = hc("registry", "metadata", "get", "--registry", "meta", "--format", "yaml")
    assert [(m["key"], m["value"]) for m in yaml.safe_load(after.stdout)] == [("tier", "gold")]

    assert (
        hc("registry", "metadata", "delete", "--registry", "meta", "--metadata", "tier:gold").exit_code == 0
    )
    none_left = hc("registry", "metadata", "get", "--registry", "meta")
    assert none_left.stdout.strip() == "No metadata found"


async def test_list_walks_all_pages_in_order_and_one_page_on_request(sandbox: Sandbox) -> None:
    settings = load_settings(flags=GlobalFlags(quiet=True), environ=sandbox.env, auth_file=sandbox.auth_file)
    names = [f"reg-{i:02d}" for i in range(23)]
    async with open_target(settings) as target, connect(target.endpoint) as client:
        for name in reversed(names):
            await client.create_registry(name, package_type="GENERIC")

    everything = await list_registries(settings, page_size=5)
    assert [item["identifier"] for item in everything.items] == names
    assert everything.page is None

    one = await list_registries(settings, page=1, page_size=10)
    assert [item["identifier"] for item in one.items] == names[10:20]
    assert one.page is not None and (one.page.index, one.page.count, one.page.total) == (1, 3, 23)


def test_one_page_prints_the_page_line(hc: HcRunner) -> None:
    for name in ("a1", "a2", "a3"):
        assert hc("-q", "registry", "create", name, "--package-type", "GENERIC").exit_code == 0
    result = hc("registry", "list", "--page", "0", "--page-size", "2")
    assert result.exit_code == 0, result
    assert lines(result.stdout)[-1] == "Page 0 of 2 (Total: 3)"
    assert [line.split()[0] for line in lines(result.stdout)[2:-1]] == ["a1", "a2"]


def test_package_type_filter(hc: HcRunner) -> None:
    assert hc("-q", "registry", "create", "gen", "--package-type", "GENERIC").exit_code == 0
    assert hc("-q", "registry", "create", "npmreg", "--package-type", "NPM").exit_code == 0
    result = hc("registry", "list", "--package-type", "npm", "--format", "json")
    assert result.exit_code == 0, result
    assert [i["identifier"] for i in json.loads(result.stdout)] == ["npmreg"]


def test_auth_status_without_login_points_at_the_embedded_store(hc: HcRunner, sandbox: Sandbox) -> None:
    result = hc("auth", "status")
    assert result.exit_code == 0
    assert str(sandbox.hc_home) in result.stdout


def test_subprocess_embedded_flow(hc_process: HcRunner, sandbox: Sandbox) -> None:
    created = hc_process("registry", "create", "sub1", "--package-type", "GENERIC")
    assert created.exit_code == 0, created
    assert lines(created.stderr) == [_notice(sandbox)]
    listed = hc_process("--format", "json", "registry", "list")
    assert [i["identifier"] for i in json.loads(listed.stdout)] == ["sub1"]
    missing = hc_process("registry", "get", "nope")
    assert missing.exit_code == 1
    assert lines(missing.stderr)[-1] == "error: registry 'nope' not found"
    assert "Traceback" not in missing.stderr
    gone = hc_process("registry", "delete", "sub1", "--yes")
    assert gone.exit_code == 0, gone
    # the user's real config was never touched: everything lives in the sandbox
    assert not sandbox.auth_file.exists()
    assert sandbox.hc_home.is_dir()


def test_delete_asks_on_a_terminal(hc: HcRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hc.cli.registry.prompt_allowed", lambda: True)
    assert hc("-q", "registry", "create", "keep", "--package-type", "GENERIC").exit_code == 0

    declined = hc("registry", "delete", "keep", input="n\n")
    assert declined.exit_code == 1
    assert "Delete registry 'keep' and everything in it? [y/N]" in declined.stdout
    assert lines(declined.stderr)[-1] == "error: cancelled: registry 'keep' was not deleted"
    assert hc("-q", "registry", "get", "keep").exit_code == 0

    accepted = hc("registry", "delete", "keep", input="y\n")
    assert accepted.exit_code == 0, accepted
    assert hc("-q", "registry", "get", "keep").exit_code == 1


async def test_operations_take_settings_and_run_without_click(sandbox: Sandbox) -> None:
    from hc.cli.registry import create_registry, delete_registry, get_metadata, get_registry, set_metadata
    from hc.errors import NotFound

    notices: list[str] = []
    settings = load_settings(flags=GlobalFlags(), environ=sandbox.env, auth_file=sandbox.auth_file)
    created = await create_registry(settings, "ops1", package_type="npm", notify=notices.append)
    assert (created["identifier"], created["packageType"], created["type"]) == ("ops1", "NPM", "VIRTUAL")
    assert notices == [_notice(sandbox)]
    pairs = await set_metadata(settings, registry="ops1", metadata="k:v")
    assert [(p.key, p.value) for p in pairs] == [("k", "v")]
    assert [(m["key"], m["value"]) for m in await get_metadata(settings, registry="ops1")] == [("k", "v")]
    assert (await get_registry(settings, "ops1"))["identifier"] == "ops1"
    await delete_registry(settings, "ops1")
    with pytest.raises(NotFound, match="registry 'ops1' not found"):
        await get_registry(settings, "ops1")
