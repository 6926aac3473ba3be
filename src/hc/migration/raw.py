"""RAW registries through ``HarnessRemote``: files addressed by their path alone.

A RAW registry keeps every file in one package and version (``default/default``) and addresses it
as ``/pkg/{account}/{registry}/files/{uri}`` (no package or version segments; the Go CLI uploads
RAW files there). ``HarnessRemote`` builds generic URLs (``files/{package}/{version}/{path}``), so
this subclass swaps the URL for RAW locations, and lists ``default/default`` for any version.

TODO(api): ``HarnessRemote`` should grow a ``raw=True`` mode itself; overriding its private
``_url`` is a stopgap that the tests pin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from hc.api.client import RegistryClient
from hc.api.files import GenericFile, HarnessRemote, RemoteFeatures
from hc.api.webdav import RAW_PACKAGE, RAW_VERSION
from hc.protocol.routes import PkgPaths, path_escape

__all__ = ["RawHarnessRemote"]


class RawHarnessRemote(HarnessRemote):
    def __init__(
        self, client: RegistryClient, registry: str, *, features: RemoteFeatures | None = None
    ) -> None:
        super().__init__(client, registry, features=features)
        self._raw_endpoint = client.endpoint

    @classmethod
    async def open_raw(cls, client: RegistryClient, registry: str) -> RawHarnessRemote:
        plain = await HarnessRemote.open(client, registry)
        return cls(client, registry, features=plain.capabilities)

    def _url(self, location: Any) -> str:
        endpoint = self._raw_endpoint
        filepath = "/".join(path_escape(segment) for segment in str(location.path).split("/"))
        return endpoint.pkg_url + PkgPaths.generic_files.format(
            account=path_escape(endpoint.account), registry=path_escape(self.registry), filepath=filepath
        )

    def _filepath(self, location: Any) -> str:
        return str(location.path)

    async def list_files(
        self, package: str, version: str, *, search_term: str | None = None
    ) -> AsyncIterator[GenericFile]:
        async for entry in super().list_files(RAW_PACKAGE, RAW_VERSION, search_term=search_term):
            yield entry
