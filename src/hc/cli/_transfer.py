"""What a push or pull command adds around the engine: options, resume state, results, summary.

- ``TransferOptions``: the flags every transfer command shares (``--concurrency``, ``--overwrite``,
  ``--dry-run``, ``--results``, ``--retry-failed``, ``--progress``) → the engine's TransferConfig.
- ``job_state``: the job's journal under ``$HC_HOME/jobs/<key>.db`` (key = the command's source and
  destination, so running the same command again resumes it) and the shared hash cache. The
  journal of a job that ended with every item done is removed; one that failed or was interrupted
  stays for the next run.
- ``TransferJob``: the accounting subscribers (progress, ``--results`` JSON lines, failure lines,
  dry-run plan lines) and the final summary: a line on stderr, or a JSON/YAML object on stdout
  with ``--format json|yaml``.

The engine does the work; nothing here moves bytes or decides what to transfer.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, TextIO

from hc.cli import render
from hc.cli.context import embedded_data_dir
from hc.cli.progress import Progress, ProgressMode, format_duration
from hc.config import DEFAULT_CONCURRENCY, OutputFormat, Settings
from hc.errors import HcError, Interrupted, UsageError
from hc.transfer import (
    Accounting,
    Event,
    HashCache,
    ItemFinished,
    ItemResult,
    Journal,
    Status,
    Summary,
    TransferConfig,
    job_key,
)

__all__ = [
    "JobState",
    "TransferJob",
    "TransferOptions",
    "job_state",
    "read_retry_set",
    "refuse_overwriting",
    "summary_line",
    "tune_gc_for_transfer",
]

#: Failed items printed one per line; the rest are counted (all of them are in --results).
MAX_FAILURE_LINES: Final = 20
_RETRY_STATUSES: Final = frozenset({Status.FAILED.value, Status.CANCELLED.value})


#: young-generation threshold while a transfer runs (CPython's default is 700)
_GC_YOUNG_THRESHOLD: Final = 50_000
_gc_tuned = False


def tune_gc_for_transfer() -> None:
    """Make the cyclic garbage collector cheap for the rest of this (short-lived) process.

    A transfer allocates a few dozen container objects per file and per request (tasks, futures,
    headers, events) and frees almost all of them by reference counting; CPython still runs a
    young collection every 700 allocations, and every tenth of those walks again the tens of
    thousands of objects the imports left behind. Freezing what exists now (modules, classes:
    they live until exit anyway) and collecting the young generation less often saved about a
    tenth of the client's CPU on 5,000 small files. Cycles are still collected, only later.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, middle, old)


@dataclass(frozen=True, kw_only=True)
class TransferOptions:
    concurrency: int = DEFAULT_CONCURRENCY
    batch: bool = True
    overwrite: bool = False
    dry_run: bool = False
    results: Path | None = None
    retry_failed: Path | None = None
    progress: ProgressMode = ProgressMode.AUTO

    def engine_config(self, *, retry_budget: float) -> TransferConfig:
        return TransferConfig(
            concurrency=self.concurrency,
            batch=self.batch,
            overwrite=self.overwrite,
            dry_run=self.dry_run,
            outage_budget=retry_budget,
        )


def refuse_overwriting(outputs: Mapping[str, Path | None], inputs: Mapping[str, Path | None]) -> None:
    """An output file (``--results``, ``--plan-out``: truncated when the job starts) must not be a
    file the job reads: that file would be gone before it is read, or once the job is done."""
    for out_flag, out in outputs.items():
        for in_flag, source in inputs.items():
            if out is not None and source is not None and _same_file(out, source):
                raise UsageError(f"{out_flag} {str(out)!r} is the {in_flag} file: name another file")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # one does not exist (yet): the same path, then, or not the same file
        return a.absolute() == b.absolute()


def read_retry_set(path: Path) -> frozenset[str]:
    """The paths a ``--results`` file reports as failed or cancelled (what ``--retry-failed`` redoes)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read results file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = raw.count(b"\n", 0, exc.start) + 1
        raise UsageError(f"{path}:{bad_line}: not UTF-8 text") from None
    wanted: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise UsageError(f"{path}:{number}: not a results line (expected one JSON object)") from None
        if not isinstance(record, dict) or not isinstance(record.get("path"), str):
            raise UsageError(f"{path}:{number}: not a results line (no 'path')")
        if record.get("status") in _RETRY_STATUSES:
            wanted.add(record["path"])
    return frozenset(wanted)


# -- resume state ------------------------------------------------------------------------------


@dataclass
class JobState:
    """The journal and hash cache of one job (both ``None`` in a dry run, which writes nothing)."""

    journal: Journal | None = None
    hash_cache: HashCache | None = None
    journal_path: Path | None = None
    #: set when every item ended done or skipped: the journal is then deleted
    clean: bool = False


@contextlib.contextmanager
def job_state(settings: Settings, identity: Sequence[str], *, dry_run: bool) -> Iterator[JobState]:
    """Open the job's journal (``$HC_HOME/jobs/<key>.db``) and the hash cache."""
    if dry_run:
        yield JobState()
        return
    base = embedded_data_dir(settings)
    path = base / "jobs" / f"{job_key(*identity)}.db"
    journal = Journal.open(path)
    try:
        cache = HashCache.open(base / "cache" / "hashes.db")
    except BaseException:
        journal.close()
        raise
    state = JobState(journal=journal, hash_cache=cache, journal_path=path)
    try:
        yield state
    finally:
        try:
            cache.close()
        finally:
            journal.close()
            if state.clean:
                _remove_journal(path)


def _remove_journal(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".lock"):
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").unlink()


# -- what the user sees ----------------------------------------------------------------------------


def summary_line(label: str, summary: Summary, *, dry_run: bool = False, interrupted: bool = False) -> str:
    """``push: 998 succeeded, 2 skipped, 0 failed; 3.9 MiB in 2.31s (1.7 MiB/s, 433 files/s)``."""
    if dry_run:
        return (
            f"{label} (dry run): {summary.planned} to transfer, {summary.skipped} already identical, "
            f"{summary.failed} failed; nothing was changed"
        )
    parts = [f"{summary.succeeded} succeeded", f"{summary.skipped} skipped", f"{summary.failed} failed"]
    if summary.cancelled:
        parts.append(f"{summary.cancelled} cancelled")
    moved = summary.succeeded + summary.failed + summary.cancelled
    rate = f"{render.human_size(int(summary.throughput))}/s"
    if summary.seconds > 0 and summary.items:
        rate += f", {summary.items / summary.seconds:.0f} files/s"
    text = (
        f"{label}{' (interrupted)' if interrupted else ''}: {', '.join(parts)}; "
        f"{render.human_size(summary.bytes)} in {format_duration(summary.seconds)}"
    )
    return f"{text} ({rate})" if moved else text


class _ResultsFile:
    """``--results FILE``: one JSON line per finished item (status, path, size, sha256, error…)."""

    def __init__(self, path: Path) -> None:
        try:
            self._handle: IO[str] | None = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write results file {str(path)!r}: {exc.strerror or exc}") from None
        self.path = path

    def __call__(self, event: Event) -> None:
        if isinstance(event, ItemFinished) and self._handle is not None:
            self._handle.write(json.dumps(event.result.to_json(), ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@dataclass
class TransferJob:
    """The accounting subscribers and the summary of one push or pull command."""

    label: str
    options: TransferOptions
    output_format: OutputFormat = OutputFormat.TABLE
    quiet: bool = False
    verbose: bool = False
    stdout: TextIO | None = None
    stderr: TextIO | None = None
    #: describes a planned item for the dry-run listing (``upload  a/b.txt  (5 B)``)
    plan_verb: str = "transfer"
    accounting: Accounting = field(default_factory=Accounting)
    #: the job's journal, once opened (an interrupted job is resumable)
    journal: Path | None = None

    def __post_init__(self) -> None:
        # Read before the results file is opened (truncated): "--retry-failed r.jsonl --results
        # r.jsonl" is the natural way to run a job again, and the failures must survive it.
        retry_failed = self.options.retry_failed
        self.retry_set: frozenset[str] | None = None if retry_failed is None else read_retry_set(retry_failed)
        self._out = self.stdout if self.stdout is not None else sys.stdout
        self._err = self.stderr if self.stderr is not None else sys.stderr
        mode = ProgressMode.NONE if self.quiet else self.options.progress
        self.progress = Progress(
            self.accounting, mode=mode, label=self.label, stream=self._err, verbose=self.verbose
        )
        self._results = _ResultsFile(self.options.results) if self.options.results is not None else None
        self._failures_shown = 0
        self._unsubscribe: list[Callable[[], None]] = [
            self.accounting.subscribe(self.progress),
            self.accounting.subscribe(self._on_event),
        ]
        if self._results is not None:
            self._unsubscribe.append(self.accounting.subscribe(self._results))

    # -- events --------------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, ItemFinished):
            return
        result = event.result
        if result.status is Status.FAILED:
            self._failure(result)
        elif self.options.dry_run and self.output_format is OutputFormat.TABLE:
            self._plan(result)

    def _failure(self, result: ItemResult) -> None:
        self._failures_shown += 1
        if self._failures_shown <= MAX_FAILURE_LINES:
            self.progress.write(render.failure_line(result.path, result.error))

    def _plan(self, result: ItemResult) -> None:
        if result.status is Status.PLANNED:
            verb = "resume" if result.action == "resume" else self.plan_verb
            line = f"{verb:<9} {result.path}  ({render.human_size(result.size)})"
        elif result.status is Status.SKIPPED:
            line = f"{'skip':<9} {result.path}  (identical)"
        else:
            return
        _print(self._out, line)

    # -- notices -------------------------------------------------------------------------------

    def notice(self, message: str) -> None:
        """A status line on stderr, unless --quiet."""
        if not self.quiet:
            self.progress.write(message)

    def warn(self, message: str) -> None:
        self.progress.write(f"warning: {message}")

    # -- the end -------------------------------------------------------------------------------

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self.progress.close()
        if self._results is not None:
            self._results.close()

    def report(self, summary: Summary, *, details: dict[str, Any], interrupted: bool = False) -> None:
        """Print the summary: JSON/YAML on stdout, else one line on stderr (kept under --quiet only
        when something went wrong)."""
        self.close()
        hidden = self._failures_shown - MAX_FAILURE_LINES
        if hidden > 0:
            where = f" (all of them in {self.options.results})" if self.options.results else ""
            _print(self._err, f"error: … and {hidden} more failed items{where}")
        if self.output_format is not OutputFormat.TABLE:
            document = {**details, **summary.to_json(), "dry_run": self.options.dry_run}
            if interrupted:
                document["interrupted"] = True
            if self.options.results is not None:
                document["results"] = str(self.options.results)
            text = (
                render.to_json(document)
                if self.output_format is OutputFormat.JSON
                else render.to_yaml(document)
            )
            _print(self._out, text)
            return
        if not self.quiet or not summary.ok or interrupted:
            line = summary_line(self.label, summary, dry_run=self.options.dry_run, interrupted=interrupted)
            _print(self._err, line)

    def finish(self, summary: Summary, *, details: dict[str, Any]) -> None:
        """Report, then turn failed items into exit code 1 (one ``error:`` line saying so)."""
        self.report(summary, details=details)
        if summary.failed or summary.cancelled:
            count = summary.failed + summary.cancelled
            noun = "item" if summary.items == 1 else "items"
            retry = (
                f" (retry them with --retry-failed {self.options.results})" if self.options.results else ""
            )
            raise HcError(f"{count} of {summary.items} {noun} failed{retry}")

    def interrupted(self, *, details: dict[str, Any]) -> Interrupted:
        """Report what was done before Ctrl-C; the error to raise (exit 130)."""
        self.report(self.accounting.summary(), details=details, interrupted=True)
        if self.journal is not None:
            return Interrupted("interrupted: run the same command again to resume")
        return Interrupted("interrupted")


def _print(stream: TextIO, text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(text, file=stream, flush=True)
