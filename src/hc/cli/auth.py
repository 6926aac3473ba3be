"""``hc auth``: login (validate a key, save ``~/.harness/auth.json``), status, logout.

The lines printed are the Go CLI's, minus its emoji. The token is never printed or logged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import click

from hc.api import Endpoint, connect
from hc.cli._group import global_options, pass_state, prompt_allowed
from hc.cli.context import CliState, embedded_data_dir, run_async
from hc.config import (
    DEFAULT_API_URL,
    ENV_ACCOUNT,
    ENV_API_KEY,
    ENV_API_URL,
    ENV_ORG,
    ENV_PROJECT,
    AuthConfig,
    Settings,
    account_from_token,
    delete_auth_file,
    normalize_url,
    write_auth_file,
)
from hc.errors import AuthError, ConfigError, HcError
from hc.protocol.identifiers import validate_scope_identifier

__all__ = ["AuthStatus", "LoginRequest", "auth_group", "check_status", "login"]

Say = Callable[[str], None]


def _silent(_: str) -> None:
    return None


# -- operations (no click) -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LoginRequest:
    api_url: str
    token: str = field(repr=False)
    account: str | None = None
    org: str | None = None
    project: str | None = None


async def login(
    request: LoginRequest,
    *,
    auth_file: Path,
    insecure: bool = False,
    ca_bundle: Path | None = None,
    say: Say = _silent,
    warn: Say = _silent,
) -> AuthConfig:
    """Validate the key against the account, fetch the package URL, and save auth.json."""
    api_url = normalize_url(request.api_url, what="API URL")
    account = request.account or account_from_token(request.token)
    validate_scope_identifier(account, kind="account")
    for value, kind in ((request.org, "org"), (request.project, "project")):
        if value:
            validate_scope_identifier(value, kind=kind)
    endpoint = Endpoint(
        api_url=api_url,
        pkg_url=api_url,
        account=account,
        token=request.token,
        org=request.org,
        project=request.project,
    )
    async with connect(endpoint, insecure=insecure, ca_bundle=ca_bundle) as client:
        say("Validating credentials...")
        await client.check_account()
        say("Credentials validated successfully")
        say("Fetching registry configuration...")
        try:
            package_url = await client.package_url()
        except AuthError:
            raise
        except HcError as exc:
            warn(f"warning: could not fetch the package URL ({exc}); package commands will use the API URL")
            package_url = None
    config = AuthConfig(
        base_url=api_url,
        token=request.token,
        account_id=account,
        org_id=request.org or "",
        project_id=request.project or "",
        registry_url=package_url or "",
    )
    write_auth_file(auth_file, config)
    say("Successfully logged into Harness")
    say(f"API URL:     {api_url}")
    say(f"Account ID:  {account}")
    return config


@dataclass(frozen=True, kw_only=True)
class AuthStatus:
    api_url: str
    pkg_url: str
    account: str
    valid: bool
    reason: str | None = None


async def check_status(settings: Settings) -> AuthStatus:
    """Repeat the login validation with the configured key (never shown)."""
    assert settings.api_url and settings.pkg_url and settings.account and settings.token
    endpoint = Endpoint(
        api_url=settings.api_url,
        pkg_url=settings.pkg_url,
        account=settings.account,
        token=settings.token,
        org=settings.org,
        project=settings.project,
    )
    async with connect(endpoint, insecure=settings.insecure, ca_bundle=settings.ca_bundle) as client:
        try:
            await client.check_account()
        except AuthError as exc:
            return AuthStatus(
                api_url=settings.api_url,
                pkg_url=settings.pkg_url,
                account=settings.account,
                valid=False,
                reason=str(exc),
            )
    return AuthStatus(
        api_url=settings.api_url, pkg_url=settings.pkg_url, account=settings.account, valid=True
    )


# -- commands ------------------------------------------------------------------------------------


@click.group("auth")
@global_options()
def auth_group() -> None:
    """Log in to Harness, show the login, log out."""


@auth_group.command("login")
@click.option("--api-url", help=f"Harness API URL [env: {ENV_API_URL}; default: {DEFAULT_API_URL}].")
@click.option("--api-token", help=f"API key (pat.<account>.<id>.<secret>) [env: {ENV_API_KEY}].")
@click.option("--account", help="Account identifier [default: from the token].")
@click.option("--org", help="Default organization identifier.")
@click.option("--project", help="Default project identifier.")
@click.option("--non-interactive", is_flag=True, help="Never prompt; fail if something is missing.")
@global_options(exclude=("api_url", "account", "org", "project"))
@pass_state
def login_command(
    state: CliState,
    api_url: str | None,
    api_token: str | None,
    account: str | None,
    org: str | None,
    project: str | None,
    non_interactive: bool,
) -> None:
    """Validate an API key and save it to ~/.harness/auth.json."""
    request = _login_request(
        state,
        api_url=api_url,
        token=api_token,
        account=account,
        org=org,
        project=project,
        interactive=not non_interactive and prompt_allowed(),
    )
    flags = state.flags
    run_async(
        login(
            request,
            auth_file=state.auth_file,
            insecure=flags.insecure,
            ca_bundle=Path(flags.ca_bundle).expanduser() if flags.ca_bundle else None,
            say=_say(state),
            warn=lambda line: click.echo(line, err=True),
        )
    )


@auth_group.command("status")
@global_options()
@pass_state
def status_command(state: CliState) -> None:
    """Show the API URL and account in use, and whether the key is valid."""
    settings = state.settings()
    if settings.uses_embedded:
        click.echo(
            f"Not logged in to Harness: commands use the embedded registry at {embedded_data_dir(settings)}"
        )
        return
    status = run_async(check_status(settings))
    click.echo(f"API URL:     {status.api_url}")
    click.echo(f"Package URL: {status.pkg_url}")
    click.echo(f"Account ID:  {status.account}")
    click.echo(f"Token:       {'valid' if status.valid else 'invalid'}")
    if not status.valid:
        raise AuthError(status.reason or "the API key was refused")


@auth_group.command("logout")
@click.option("--force", is_flag=True, hidden=True, help="Accepted for compatibility; logout never asks.")
@global_options()
@pass_state
def logout_command(state: CliState, force: bool) -> None:
    """Delete ~/.harness/auth.json."""
    del force
    path = state.auth_file
    if delete_auth_file(path):
        _say(state)(f"Logged out: removed {path}")
    else:
        _say(state)(f"Not logged in: {path} does not exist")


def _say(state: CliState) -> Say:
    def say(line: str) -> None:
        if not state.quiet:
            click.echo(line)

    return say


def _login_request(
    state: CliState,
    *,
    api_url: str | None,
    token: str | None,
    account: str | None,
    org: str | None,
    project: str | None,
    interactive: bool,
) -> LoginRequest:
    """Fill what the flags left out: root flags, then the environment, then prompts (on a terminal)."""
    env: Mapping[str, str] = state.environ
    flags = state.flags

    def pick(*values: str | None) -> str | None:
        return next((v.strip() for v in values if v and v.strip()), None)

    api = pick(api_url, flags.api_url, env.get(ENV_API_URL))
    key = pick(token, flags.token, env.get(ENV_API_KEY))
    acct = pick(account, flags.account, env.get(ENV_ACCOUNT))
    org_id = pick(org, flags.org, env.get(ENV_ORG))
    project_id = pick(project, flags.project, env.get(ENV_PROJECT))
    prompted = False
    if key is None:
        if not interactive:
            raise ConfigError(f"no API key: pass --api-token or set {ENV_API_KEY}")
        if api is None:
            api = click.prompt("Harness API URL", default=DEFAULT_API_URL).strip()
        key = click.prompt("API token", hide_input=True).strip()
        prompted = True
    if acct is None:
        try:
            account_from_token(key)
        except ConfigError:
            if not interactive:
                raise
            acct = click.prompt("Account ID").strip()
            prompted = True
    if prompted:
        org_id = org_id or click.prompt("Organization (optional)", default="", show_default=False).strip()
        project_id = project_id or click.prompt("Project (optional)", default="", show_default=False).strip()
    return LoginRequest(
        api_url=api or DEFAULT_API_URL,
        token=key,
        account=acct,
        org=org_id or None,
        project=project_id or None,
    )
