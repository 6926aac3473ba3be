"""Where a command talks to: the one place that turns ``Settings`` into a live target.

With an API URL configured, the target is that server. Without one, the embedded registry (under
``$HC_HOME`` or the default data directory) is served in-process on 127.0.0.1 on a free port for the
command's duration, with the local account and key; one notice line on stderr says so.

Also holds ``CliState``, the per-invocation object click carries in ``ctx.obj``: global flags as
parsed (from the root *and* the leaf command), the environment and home directory read at the edge,
and the settings, loaded lazily so ``hc auth`` and ``--help`` work whatever the configuration.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import click

from hc.config import DEFAULT_RETRY_BUDGET, GlobalFlags, Settings, auth_file_path, load_settings
from hc.errors import ConfigError

if TYPE_CHECKING:
    # At run time hc.api (and aiohttp with it, the biggest import of hc) is imported by the
    # functions that connect, so ``--help`` and ``hc auth`` start without it.
    from hc.api import Endpoint, RegistryClient

__all__ = [
    "CliState",
    "Notify",
    "Target",
    "embedded_data_dir",
    "open_client",
    "open_target",
    "run_async",
    "run_job",
]

log = logging.getLogger("hc.cli")

_T = TypeVar("_T")
Notify = Callable[[str], None]


def _stderr_notice(message: str) -> None:
    click.echo(message, err=True)


@dataclass(frozen=True, kw_only=True)
class Target:
    """A registry to talk to, resolved and (for the embedded one) running."""

    endpoint: Endpoint
    embedded: bool
    data_dir: Path | None = None
    insecure: bool = False
    ca_bundle: Path | None = None
    retry_budget: float = DEFAULT_RETRY_BUDGET


def embedded_data_dir(settings: Settings) -> Path:
    """Where the embedded registry's store lives: ``$HC_HOME``, else the server's default."""
    if settings.hc_home is not None:
        return settings.hc_home
    try:
        from hc.server.paths import default_data_dir
    except ImportError as exc:  # pragma: no cover - only while the server package is incomplete
        raise ConfigError(f"the embedded registry is not available ({exc}); configure --api-url") from exc
    return default_data_dir()


@asynccontextmanager
async def open_target(settings: Settings, *, notify: Notify = _stderr_notice) -> AsyncIterator[Target]:
    """Resolve (and for the embedded registry, start) the target for one command."""
    from hc.api import Endpoint

    if not settings.uses_embedded:
        assert settings.api_url and settings.pkg_url and settings.account and settings.token
        yield Target(
            endpoint=Endpoint(
                api_url=settings.api_url,
                pkg_url=settings.pkg_url,
                account=settings.account,
                token=settings.token,
                org=settings.org,
                project=settings.project,
            ),
            embedded=False,
            insecure=settings.insecure,
            ca_bundle=settings.ca_bundle,
            retry_budget=settings.retry_budget,
        )
        return
    data_dir = embedded_data_dir(settings)
    try:
        from hc.server.embedded import serve_embedded
    except ImportError as exc:  # pragma: no cover - only while the server package is incomplete
        raise ConfigError(
            f"no Harness account configured and the embedded registry is not available ({exc}); "
            "run 'hc auth login' or pass --api-url and --token"
        ) from exc
    if not settings.quiet:
        notify(f"hc: no Harness account configured; using the embedded registry at {data_dir}")
    async with serve_embedded(data_dir) as server, _quiet_server_log(verbose=settings.verbose):
        log.debug("embedded registry serving %s at %s", data_dir, server.base_url)
        yield Target(
            endpoint=Endpoint(
                api_url=server.base_url,
                pkg_url=server.base_url,
                account=server.account,
                token=server.token,
                org=settings.org,
                project=settings.project,
            ),
            embedded=True,
            data_dir=data_dir,
            retry_budget=settings.retry_budget,
        )


@asynccontextmanager
async def _quiet_server_log(*, verbose: bool) -> AsyncIterator[None]:
    """Keep the in-process registry's own log (an internal error's traceback) off the command's
    stderr unless -v: the client's error line already reports the failure and its incident id,
    and ``-v`` shows the server's side. (``hc server run`` keeps its log: that is a server.)"""
    if verbose:
        yield
        return
    handler = logging.NullHandler()
    saved: list[tuple[logging.Logger, bool]] = []
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate))
        logger.addHandler(handler)  # a handler of its own: Python's last-resort printer stays out
        logger.propagate = False
    try:
        yield
    finally:
        for logger, propagate in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate


#: The loggers of the serving side: hc's handlers, and aiohttp's (a request its parser refuses).
_SERVER_LOGGERS: Final = ("hc.server", "aiohttp.server", "aiohttp.web", "aiohttp.access")


@asynccontextmanager
async def open_client(
    settings: Settings, *, notify: Notify = _stderr_notice
) -> AsyncIterator[RegistryClient]:
    """``open_target`` plus a ``RegistryClient`` (and its HTTP session) for it."""
    async with open_target(settings, notify=notify) as target, connect_target(target) as client:
        yield client


@asynccontextmanager
async def connect_target(target: Target, *, connections: int | None = None) -> AsyncIterator[RegistryClient]:
    """A ``RegistryClient`` for ``target`` with its TLS and retry settings; ``connections``: how many
    requests the caller runs at once (sizes the connection pool)."""
    from hc.api import RetryPolicy, connect

    async with connect(
        target.endpoint,
        insecure=target.insecure,
        ca_bundle=target.ca_bundle,
        retry=RetryPolicy(outage_budget=target.retry_budget),
        connections=connections,
    ) as client:
        yield client


def run_async(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run one command's coroutine on a fresh asyncio loop (aiohttp needs asyncio)."""
    # The result goes out through a holder, not as the main task's result: on its way out
    # (Python 3.11) asyncio.run may format the task's repr, result included, which for a big
    # result is seconds of CPU.
    import asyncio  # here, like hc.api: what only a running command needs is not loaded by --help

    results: list[_T] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(_loop_exception)
        results.append(await coro)

    asyncio.run(main())
    return results[0]


def _loop_exception(loop: Any, context: dict[str, Any]) -> None:
    """asyncio's report of an error nobody awaited, except one that is only noise.

    After Ctrl-C, asyncio closes the async generators a cancelled command left suspended (a
    listing being paged) all at once; closing an outer generator closes the inner one while
    asyncio closes it too, which it reports with a traceback ("an error occurred during closing
    of asynchronous generator"). The command has stopped cleanly by then, so that goes to -v."""
    if "asyncgen" in context and isinstance(context.get("exception"), RuntimeError):
        log.debug("%s: %r", context.get("message"), context.get("exception"))
        return
    loop.default_exception_handler(context)


class Job(Protocol):
    """A push, pull, migration or bulk job's reporter, as ``run_job`` drives it."""

    def interrupted(self, *, details: dict[str, Any]) -> BaseException: ...

    def close(self) -> None: ...


def run_job(job: Job, work: Coroutine[Any, Any, _T], *, details: dict[str, Any]) -> _T:
    """``run_async`` for a job: Ctrl-C becomes the job's report of what it did and the error to
    exit with (130, run again to resume), and the job's progress display is closed either way."""
    try:
        return run_async(work)
    except KeyboardInterrupt:
        raise job.interrupted(details=details) from None
    finally:
        job.close()


@dataclass(kw_only=True)
class CliState:
    """What one ``hc`` invocation knows before a command runs (click's ``ctx.obj``)."""

    environ: Mapping[str, str]
    home: Path
    flags: GlobalFlags = field(default_factory=GlobalFlags)
    _settings: Settings | None = None
    _log_handler: logging.Handler | None = None

    @property
    def auth_file(self) -> Path:
        return auth_file_path(self.home)

    @property
    def verbose(self) -> bool:
        return self.flags.verbose

    @property
    def quiet(self) -> bool:
        return self.flags.quiet

    def set_flag(self, name: str, value: object) -> None:
        """Record a global flag given on the command line; a later (leaf) occurrence wins."""
        changes: dict[str, Any] = {name: value}
        self.flags = replace(self.flags, **changes)
        self._settings = None

    def settings(self) -> Settings:
        """The validated settings (flags > environment > auth.json), loaded on first use."""
        self.setup_logging()
        if self._settings is None:
            self._settings = load_settings(flags=self.flags, environ=self.environ, auth_file=self.auth_file)
            for note in self._settings.notes:
                log.info("%s", note)
            for warning in self._settings.warnings:
                self.notice(f"warning: {warning}")
        return self._settings

    def notice(self, message: str) -> None:
        """A status line on stderr, unless --quiet."""
        if not self.quiet:
            click.echo(message, err=True)

    def setup_logging(self) -> None:
        """With -v, hc's log lines go to stderr (never the token: nothing logs headers)."""
        if self._log_handler is not None or not self.verbose:
            return
        handler = _ClickStderrHandler()
        handler.setFormatter(logging.Formatter("hc: %(message)s"))
        logger = logging.getLogger("hc")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        self._log_handler = handler

    def teardown(self) -> None:
        """Undo process-wide changes (the log handler), so in-process runs do not pile them up."""
        if self._log_handler is not None:
            logger = logging.getLogger("hc")
            logger.removeHandler(self._log_handler)
            logger.setLevel(logging.NOTSET)
            self._log_handler = None


class _ClickStderrHandler(logging.Handler):
    # Looks up stderr at emit time: click's test runner swaps sys.stderr per invocation.
    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # pragma: no cover - logging must never break the command
            self.handleError(record)
