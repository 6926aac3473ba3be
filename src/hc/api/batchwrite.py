"""Client side of batch writes (``hc.protocol.batchwrite``): whole small files uploaded one by one
by the engine's workers, sent many to a request (``hc.api._coalesce``).

Each file gets the outcome a PUT of it would have had: its own 409, its own ``CHECKSUM_MISMATCH``
(an IntegrityError, which the engine answers by sending the file again). A damaged exchange (the
request refused by its checksum, an answer that does not list the files sent) fails every file
of the request with a TransientError, so that each is sent again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp

from hc.api._coalesce import BatchPoster, Coalescer, Waiter
from hc.api._http import error_for_status
from hc.errors import IntegrityError, RemoteError, TransientError
from hc.protocol.batchwrite import BATCH_WRITE_CONTENT_TYPE, WriteRecord, WriteResult

__all__ = ["BatchUploader"]


@dataclass(frozen=True, slots=True)
class _Upload:
    record: WriteRecord
    data: bytes


class BatchUploader:
    """Whole small files to one registry, uploaded in batches over the command's session."""

    __slots__ = ("_batches", "_poster")

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: Callable[[], Mapping[str, str]],
        *,
        max_files: int,
        max_bytes: int,
        overwrite: bool,
        stall_timeout: float = 120.0,
    ) -> None:
        url += "?overwrite=true" if overwrite else ""
        self._poster = BatchPoster(session, url, headers, stall_timeout=stall_timeout)
        self._batches: Coalescer[_Upload, WriteResult] = Coalescer(
            self._send, max_items=max_files, max_bytes=max_bytes, size_of=lambda upload: len(upload.data)
        )

    async def write(self, filepath: str, data: bytes, *, sha256: str) -> int:
        """Store ``data`` at ``filepath`` (as after ``/files/`` in a PUT, unescaped): 201 when the
        path was new, 200 otherwise; the error a PUT would have raised when it is refused."""
        result = await self._batches.call(_Upload(WriteRecord(filepath, len(data), sha256), data))
        if 200 <= result.status < 300:
            return result.status
        if result.code == IntegrityError.code:
            raise IntegrityError(f"{filepath}: the registry received different bytes than were sent")
        raise error_for_status(result.status, message=result.message, where=f"PUT {filepath}")

    async def _send(self, batch: list[Waiter[_Upload, WriteResult]]) -> None:
        parts: list[bytes] = []
        for upload, _ in batch:
            parts.append(upload.record.encode())
            parts.append(upload.data)
        body = b"".join(parts)
        async with self._poster.post(body, BATCH_WRITE_CONTENT_TYPE) as response:
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                raise TransientError(f"POST {self._poster.url}: the answer is not JSON") from None
        data = answer.get("data") if isinstance(answer, Mapping) else None
        results = data.get("results") if isinstance(data, Mapping) else None
        if not isinstance(results, list):
            raise RemoteError(f"POST {self._poster.url}: the answer is not a batch write's")
        if len(results) != len(batch):
            raise TransientError(f"batch write: {len(results)} results for {len(batch)} files")
        for (upload, future), value in zip(batch, results, strict=True):
            result = WriteResult.from_json(value)
            if result.file != upload.record.file:
                raise TransientError(f"batch write: the result of {upload.record.file!r} is missing")
            if not future.done():
                future.set_result(result)
