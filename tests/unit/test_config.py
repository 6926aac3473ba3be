"""hc.config: precedence (flag > env > file), token parsing, the auth.json file, validation."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from hc.config import (
    AuthConfig,
    GlobalFlags,
    OutputFormat,
    Settings,
    account_from_token,
    delete_auth_file,
    load_settings,
    read_auth_file,
    write_auth_file,
)
from hc.errors import ConfigError, ExitCode

FILE_TOKEN = "pat.fileacct.k1.s1"
ENV_TOKEN = "pat.envacct.k2.s2"
FLAG_TOKEN = "pat.flagacct.k3.s3"


def _auth_file(tmp_path: Path, **fields: str) -> Path:
    path = tmp_path / ".harness" / "auth.json"
    base = {"base_url": "https://file.example", "token": FILE_TOKEN, "account_id": "fileacct"}
    base.update(fields)
    write_auth_file(path, AuthConfig(**base))
    return path


def _load(
    tmp_path: Path,
    *,
    flags: GlobalFlags | None = None,
    env: dict[str, str] | None = None,
    auth_file: Path | None = None,
) -> Settings:
    return load_settings(
        flags=flags or GlobalFlags(),
        environ=env or {},
        auth_file=auth_file if auth_file is not None else tmp_path / "missing.json",
    )


# -- precedence ------------------------------------------------------------------------------------

PRECEDENCE = [
    # (flags, env, use file, expected (api_url, token, account, org, project, pkg_url))
    pytest.param(
        {},
        {},
        True,
        ("https://file.example", FILE_TOKEN, "fileacct", "fo", "fp", "https://pkg.file.example"),
        id="file-only",
    ),
    pytest.param(
        {},
        {"HARNESS_API_KEY": ENV_TOKEN, "ORG_IDENTIFIER": "eo", "PROJECT_IDENTIFIER": "ep"},
        True,
        ("https://file.example", ENV_TOKEN, "envacct", "eo", "ep", "https://pkg.file.example"),
        id="env-over-file",
    ),
    pytest.param(
        {"token": FLAG_TOKEN, "org": "flo", "project": "flp"},
        {"HARNESS_API_KEY": ENV_TOKEN, "ORG_IDENTIFIER": "eo", "PROJECT_IDENTIFIER": "ep"},
        True,
        ("https://file.example", FLAG_TOKEN, "flagacct", "flo", "flp", "https://pkg.file.example"),
        id="flag-over-env",
    ),
    pytest.param(
        {"account": "explicit"},
        {"HARNESS_ACCOUNT_ID": "envexplicit"},
        True,
        ("https://file.example", FILE_TOKEN, "explicit", "fo", "fp", "https://pkg.file.example"),
        id="account-flag-over-env",
    ),
    pytest.param(
        {},
        {"HARNESS_ACCOUNT_ID": "envexplicit", "HARNESS_PKG_URL": "pkg.env.example"},
        True,
        ("https://file.example", FILE_TOKEN, "envexplicit", "fo", "fp", "https://pkg.env.example"),
        id="env-account-and-pkg-url",
    ),
    pytest.param(
        {"pkg_url": "http://pkg.flag.example/"},
        {"HARNESS_PKG_URL": "https://pkg.env.example"},
        True,
        ("https://file.example", FILE_TOKEN, "fileacct", "fo", "fp", "http://pkg.flag.example"),
        id="pkg-url-flag-over-env",
    ),
    pytest.param(
        {"api_url": "http://127.0.0.1:8080/", "token": FLAG_TOKEN},
        {},
        True,
        ("http://127.0.0.1:8080", FLAG_TOKEN, "flagacct", None, None, "http://127.0.0.1:8080"),
        id="other-server-ignores-file",
    ),
    pytest.param(
        {"api_url": "https://file.example/"},
        {},
        True,
        ("https://file.example", FILE_TOKEN, "fileacct", "fo", "fp", "https://pkg.file.example"),
        id="same-server-flag-uses-file",
    ),
    pytest.param(
        {},
        {"HARNESS_API_URL": "https://env.example", "HARNESS_API_KEY": ENV_TOKEN},
        False,
        ("https://env.example", ENV_TOKEN, "envacct", None, None, "https://env.example"),
        id="env-only",
    ),
]


@pytest.mark.parametrize(("flags", "env", "use_file", "expected"), PRECEDENCE)
def test_precedence(
    tmp_path: Path,
    flags: dict[str, Any],
    env: dict[str, str],
    use_file: bool,
    expected: tuple[str | None, ...],
) -> None:
    auth = (
        _auth_file(tmp_path, org_id="fo", project_id="fp", registry_url="https://pkg.file.example")
        if use_file
        else None
    )
    settings = _load(tmp_path, flags=GlobalFlags(**flags), env=env, auth_file=auth)
    got = (
        settings.api_url,
        settings.token,
        settings.account,
        settings.org,
        settings.project,
        settings.pkg_url,
    )
    assert got == expected
    assert not settings.uses_embedded


def test_saved_account_goes_with_saved_token_not_a_new_one(tmp_path: Path) -> None:
    # A CI JWT carries no account: the saved account_id is what makes the saved token usable.
    auth = _auth_file(tmp_path, token="CIManager.jwt-without-account", account_id="savedacct")
    settings = _load(tmp_path, auth_file=auth)
    assert settings.account == "savedacct"
    # A token from the environment brings its own account.
    settings = _load(tmp_path, auth_file=auth, env={"HARNESS_API_KEY": ENV_TOKEN})
    assert settings.account == "envacct"


def test_file_without_registry_url_falls_back_to_api_url_with_a_note(tmp_path: Path) -> None:
    settings = _load(tmp_path, auth_file=_auth_file(tmp_path))
    assert settings.pkg_url == "https://file.example"
    assert any("no registry_url" in note for note in settings.notes)


def test_no_api_url_anywhere_means_embedded(tmp_path: Path) -> None:
    settings = _load(tmp_path, env={"HC_HOME": str(tmp_path / "store"), "ORG_IDENTIFIER": "o1"})
    assert settings.uses_embedded
    assert settings.api_url is None and settings.token is None
    assert settings.hc_home == tmp_path / "store"
    assert settings.org == "o1"


def test_api_url_without_token_is_not_logged_in(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, env={"HARNESS_API_URL": "https://x.example"})
    assert str(info.value) == "not logged in: run 'hc auth login' or set HARNESS_API_KEY"
    assert info.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize("name", ["token", "pkg_url"])
def test_token_or_pkg_url_without_api_url_is_refused(tmp_path: Path, name: str) -> None:
    value: Any = FLAG_TOKEN if name == "token" else "https://pkg.example"
    with pytest.raises(ConfigError, match="no API URL is configured"):
        _load(tmp_path, flags=GlobalFlags(**{name: value}))


def test_malformed_token_is_a_clear_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="malformed token"):
        _load(tmp_path, flags=GlobalFlags(api_url="https://x.example", token="no-dots-here"))
    # With an explicit account the token is passed through untouched (CI JWTs, other key kinds).
    settings = _load(tmp_path, flags=GlobalFlags(api_url="https://x.example", token="opaque", account="a1"))
    assert settings.token == "opaque" and settings.account == "a1"


@pytest.mark.parametrize(
    ("token", "account"),
    [("pat.acct1.key.secret", "acct1"), ("sat.Ab_C-9.k.s", "Ab_C-9")],
)
def test_account_from_token(token: str, account: str) -> None:
    assert account_from_token(token) == account


@pytest.mark.parametrize("token", ["", "abc", "pat.acct", "pat.acct.key", "pat..key.secret", "a.b.c.d.e"])
def test_account_from_malformed_token(token: str) -> None:
    with pytest.raises(ConfigError, match="malformed token"):
        account_from_token(token)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (GlobalFlags(api_url="ftp://x", token=FLAG_TOKEN), "invalid API URL"),
        (GlobalFlags(api_url="https://", token=FLAG_TOKEN), "invalid API URL"),
        (GlobalFlags(api_url="https://x:port", token=FLAG_TOKEN), "invalid API URL"),
        (GlobalFlags(api_url="https://x", token=FLAG_TOKEN, pkg_url="ftp://p"), "invalid package URL"),
        (GlobalFlags(output_format="xml"), "unknown output format"),
        (GlobalFlags(ca_bundle="/nonexistent/ca.pem"), "CA bundle"),
        (GlobalFlags(api_url="https://x", token="pat.bad/acct.k.s"), "invalid account identifier"),
        (GlobalFlags(org="bad org"), "invalid org identifier"),
    ],
)
def test_invalid_values_are_config_errors(tmp_path: Path, flags: GlobalFlags, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, flags=flags)


def test_output_flags_pass_through(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    settings = _load(
        tmp_path,
        flags=GlobalFlags(output_format="YAML", verbose=True, quiet=True, insecure=True, ca_bundle=str(ca)),
    )
    assert settings.output_format is OutputFormat.YAML
    assert (settings.verbose, settings.quiet, settings.insecure, settings.ca_bundle) == (True, True, True, ca)


def test_repr_never_shows_the_token(tmp_path: Path) -> None:
    settings = _load(tmp_path, flags=GlobalFlags(api_url="https://x.example", token=FLAG_TOKEN))
    assert FLAG_TOKEN not in repr(settings)
    assert FLAG_TOKEN not in repr(GlobalFlags(token=FLAG_TOKEN))
    assert FLAG_TOKEN not in repr(AuthConfig(token=FLAG_TOKEN))


def test_settings_are_frozen_and_keyword_only() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.api_url = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Settings("https://x")  # type: ignore[call-arg]


# -- auth.json -------------------------------------------------------------------------------------


def test_auth_file_written_0600_in_0700_folder_with_go_fields(tmp_path: Path) -> None:
    folder = tmp_path / ".harness"
    folder.mkdir(mode=0o755)  # the Go CLI's mode; hc tightens it
    folder.chmod(0o755)
    path = folder / "auth.json"
    write_auth_file(path, AuthConfig(base_url="https://a", token=FILE_TOKEN, account_id="acct"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    # org/project/registry_url are omitted when empty, as the Go CLI's omitempty does
    assert data == {"base_url": "https://a", "token": FILE_TOKEN, "account_id": "acct"}
    assert [p.name for p in folder.iterdir()] == ["auth.json"]  # no temp file left behind


def test_an_auth_file_others_can_read_is_used_with_a_warning(tmp_path: Path) -> None:
    path = _auth_file(tmp_path)
    assert _load(tmp_path, auth_file=path).warnings == ()
    path.chmod(0o644)
    settings = _load(tmp_path, auth_file=path)
    assert settings.token == FILE_TOKEN
    assert settings.warnings == (
        f"{path} holds your API key and is readable by other users: run 'chmod 600 {path}'",
    )
    assert _load(tmp_path, auth_file=path, flags=GlobalFlags(token=FLAG_TOKEN)).warnings == ()


def test_auth_file_rewrite_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "h" / "auth.json"
    write_auth_file(path, AuthConfig(base_url="https://a", token="t1", account_id="a"))
    write_auth_file(
        path,
        AuthConfig(base_url="https://b", token="t2", account_id="b", org_id="o", registry_url="https://p"),
    )
    loaded = read_auth_file(path)
    assert loaded == AuthConfig(
        base_url="https://b", token="t2", account_id="b", org_id="o", registry_url="https://p"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_auth_file_created_private_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "fresh" / "auth.json"
        write_auth_file(path, AuthConfig(base_url="https://a", token="t", account_id="a"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_reading_the_go_cli_file(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text(
        json.dumps(
            {
                "base_url": "https://app.harness.io",
                "token": FILE_TOKEN,
                "account_id": "fileacct",
                "org_id": "default",
                "project_id": "p1",
                "registry_url": "https://pkg.harness.io",
            },
            indent=2,
        )
    )
    assert read_auth_file(path) == AuthConfig(
        base_url="https://app.harness.io",
        token=FILE_TOKEN,
        account_id="fileacct",
        org_id="default",
        project_id="p1",
        registry_url="https://pkg.harness.io",
    )


@pytest.mark.parametrize("content", ["{not json", "[]", '{"token": 5}'])
def test_broken_auth_file_is_a_config_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "auth.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=str(path)):
        read_auth_file(path)


def test_missing_auth_file_reads_as_none_and_delete_reports_it(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    assert read_auth_file(path) is None
    assert delete_auth_file(path) is False
    write_auth_file(path, AuthConfig(base_url="https://a", token="t", account_id="a"))
    assert delete_auth_file(path) is True
    assert not path.exists()


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (None, None, 30.0),
        (None, "5", 5.0),
        (None, " 0 ", 0.0),
        (2.5, "5", 2.5),  # the flag beats the environment
        (0.0, "5", 0.0),  # 0 given on the command line is a value, not "unset"
    ],
)
def test_retry_budget_from_flag_environment_or_default(
    tmp_path: Path, flag: float | None, env: str | None, expected: float
) -> None:
    settings = _load(
        tmp_path, flags=GlobalFlags(retry_budget=flag), env={} if env is None else {"HC_RETRY_BUDGET": env}
    )
    assert settings.retry_budget == expected


@pytest.mark.parametrize(
    ("flag", "env", "message"),
    [
        (None, "soon", "HC_RETRY_BUDGET='soon' is not a number"),
        (None, "-1", "HC_RETRY_BUDGET must be 0..86400"),
        (None, "nan", "HC_RETRY_BUDGET must be 0..86400"),
        (1e9, None, "--retry-budget must be 0..86400"),
    ],
)
def test_a_bad_retry_budget_is_a_config_error(
    tmp_path: Path, flag: float | None, env: str | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(
            tmp_path,
            flags=GlobalFlags(retry_budget=flag),
            env={} if env is None else {"HC_RETRY_BUDGET": env},
        )
