"""The migration config: the Go hc's schema, ${VAR} expansion, and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from hc.errors import ConfigError
from hc.migration.config import DateMatch, SourceType, expand_variables, load_config, parse_config

GOOD = """
version: 1.0.0
concurrency: 7
overwrite: true
source:
  type: webdav
  endpoint: http://dav.example:8080/root/
  credentials: {username: ${USER_NAME}, password: "${PASS}"}
destination:
  type: HAR
  endpoint: https://pkg.example
  credentials: {password: $KEY}
mappings:
  - artifactType: generic
    sourceRegistry: /repo/sub/
    destinationRegistry: org1/proj1/dst
    includePatterns: ["pkg/**"]
    excludePatterns: ["**/*.tmp"]
    dateFilter: {match: all, createdAfter: 2024-01-02T03:04:05Z, downloadedAfter: "2024-02-01"}
  - artifactType: RAW
    sourceRegistry: /
    destinationRegistry: raw
"""


def test_a_full_config_reads_into_typed_values() -> None:
    env = {"USER_NAME": "me", "PASS": "p$w", "KEY": "pat.acct.id.secret"}
    config = parse_config(GOOD, env)
    assert config.concurrency == 7 and config.overwrite and not config.dry_run
    assert config.source_type is SourceType.WEBDAV
    assert config.source.endpoint == "http://dav.example:8080/root"
    assert config.source.credentials.username == "me" and config.source.credentials.password == "p$w"
    assert config.destination.credentials.password == "pat.acct.id.secret"
    first, second = config.mappings
    assert first.source_registry == "repo/sub"
    assert (first.destination.org, first.destination.project, first.destination.registry) == (
        "org1",
        "proj1",
        "dst",
    )
    assert first.include_patterns == ("pkg/**",) and first.exclude_patterns == ("**/*.tmp",)
    assert first.date_filter is not None and first.date_filter.match is DateMatch.ALL
    assert first.date_filter.created_after == 1704164645.0
    assert first.date_filter.downloaded_after == 1706745600.0
    assert second.artifact_type == "RAW" and second.source_registry == ""
    assert "p$w" not in repr(config)  # secrets stay out of reprs


def test_variables_expand_like_go_os_expand() -> None:
    env = {"A": "1", "B_2": "two"}
    assert expand_variables("${A}-$B_2-${MISSING}-$", env) == "1-two--$"


def test_concurrency_defaults_when_absent(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD.replace("concurrency: 7\n", ""))
    assert load_config(path, {"KEY": "k"}).concurrency == 32


BASE = "source: {type: WEBDAV, endpoint: http://x}\ndestination: {type: HAR, endpoint: http://y}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "expected a YAML mapping"),
        ("bogus: 1\n" + BASE, "unknown key 'bogus'"),
        ("concurrency: -1\n" + BASE, "concurrency: must be a whole number from 1 to 1024"),
        ("concurrency: true\n" + BASE, "concurrency: must be a whole number"),
        ("mappings: []\n", "source: is required"),
        ("source: {type: WEBDAV, endpoint: http://x}\n", "destination: is required"),
        (BASE, "mappings: at least one mapping is required"),
        ("source: {type: NEXUS, endpoint: http://x}\n", "NEXUS sources are not supported yet"),
        ("source: {type: S3, endpoint: http://x}\n", "unknown source type 'S3'"),
        ("source: {type: WEBDAV}\n", "source.endpoint: is required"),
        ('source: {type: WEBDAV, endpoint: "http://x?a=1"}\n', "query or fragment"),
        ("source: {type: WEBDAV, endpoint: http://x, credentials: {username: u}}\n",
         "a username needs a password"),
        ("source: {type: HAR, endpoint: http://x}\ndestination: {type: JFROG, endpoint: http://y}\n",
         "the destination must be HAR"),
        (BASE + "mappings: [{artifactType: NPM, sourceRegistry: a, destinationRegistry: b}]",
         "mappings[0].artifactType: NPM is not supported yet (supported: GENERIC, RAW)"),
        (BASE + "mappings: [{artifactType: FOO, sourceRegistry: a, destinationRegistry: b}]",
         "unknown artifact type"),
        (BASE + "mappings: [{artifactType: GENERIC, destinationRegistry: b}]", "sourceRegistry: is required"),
        (BASE + "mappings: [{artifactType: GENERIC, sourceRegistry: a}]", "destinationRegistry: is required"),
        (BASE + "mappings: [{artifactType: GENERIC, sourceRegistry: a, destinationRegistry: Bad}]",
         "invalid registry identifier"),
        (BASE + "mappings: [{artifactType: GENERIC, sourceRegistry: a, destinationRegistry: a/b/c/d}]",
         "expected 'registry', 'org/registry'"),
        (BASE + "mappings: [{artifactType: GENERIC, sourceRegistry: ../up, destinationRegistry: b}]",
         "not a safe directory path"),
        (BASE + "mappings: [{artifactType: GENERIC, sourceRegistry: a, destinationRegistry: b, "
         "dateFilter: {match: SOME, createdAfter: 2024-01-01}}]", "must be ANY or ALL"),
        (BASE + "mappings: [{artifactType: GENERIC, sourceRegistry: a, destinationRegistry: b, "
         "dateFilter: {match: ANY}}]", "needs createdAfter or downloadedAfter"),
        (BASE + "mappings: [{artifactType: GENERIC, sourceRegistry: a, destinationRegistry: b, "
         "dateFilter: {createdAfter: yesterday}}]", "expected an RFC 3339 time"),
        (BASE + "mappings: [{artifactType: GENERIC, sourceRegistry: a, destinationRegistry: b, "
         "includePatterns: [1]}]", "expected a list of non-empty strings"),
    ],
)  # fmt: skip
def test_bad_configs_are_one_line_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, {}, name="m.yaml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("m.yaml: ")


def test_har_source_registries_may_carry_a_scope() -> None:
    config = parse_config(
        "source: {type: HAR, endpoint: http://x, credentials: {password: k}}\n"
        "destination: {type: HAR, endpoint: http://y}\n"
        "mappings: [{artifactType: GENERIC, sourceRegistry: org/src, destinationRegistry: dst}]\n",
        {},
    )
    assert config.mappings[0].source_registry == "org/src"
    with pytest.raises(ConfigError, match="sourceRegistry"):
        parse_config(
            "source: {type: HAR, endpoint: http://x}\ndestination: {type: HAR, endpoint: http://y}\n"
            "mappings: [{artifactType: GENERIC, sourceRegistry: Not_Valid, destinationRegistry: dst}]\n",
            {},
        )


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read migration config"):
        load_config(tmp_path / "missing.yaml", {})
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "bin.yaml", {})
