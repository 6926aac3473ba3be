"""The REST layout hc speaks, in one table used by both the client (api/) and the server (server/).

Bases are those of Harness SaaS, so ``--api-url http://127.0.0.1:3000`` against the embedded
registry works exactly like ``--api-url https://app.harness.io``:

- management APIs: ``{api}/gateway/har/api/v1``, ``/v2``, ``/v3``
- package endpoints: ``{pkg}/pkg/{account}/{registry}/...``
- the login check: ``{api}/ng/api/accounts/{account}``

Path parameters are escaped the way the Go client's oapi-codegen runtime does (Go's
``url.PathEscape``): every ``/`` inside a parameter becomes ``%2F``; ``@ + : = & $ ,`` stay as they
are. ``registry_ref`` and ``space_ref`` are ``account[/org[/project]][/registry]`` joined by ``/``
and then escaped as one parameter, followed by the literal ``/+`` that marks their end.
"""

from __future__ import annotations

from urllib.parse import quote

__all__ = [
    "ACCOUNT_CHECK",
    "PKG_PREFIX",
    "V1",
    "V2",
    "V3",
    "generic_file_path",
    "path_escape",
    "space_ref",
]

V1 = "/gateway/har/api/v1"
V2 = "/gateway/har/api/v2"
V3 = "/gateway/har/api/v3"
ACCOUNT_CHECK = "/ng/api/accounts/{account}"
PKG_PREFIX = "/pkg"

# Characters Go's url.PathEscape leaves alone inside one path segment (RFC 3986 pchar minus "/").
_GO_PATH_SAFE = "-._~!$&'()*+,;=:@"


def path_escape(value: str) -> str:
    """Escape one path parameter as Go's ``url.PathEscape`` does (``/`` becomes ``%2F``)."""
    return quote(value, safe=_GO_PATH_SAFE)


def space_ref(account: str, org: str | None = None, project: str | None = None, *extra: str) -> str:
    """Join the non-empty parts of a scope (and optionally a registry) with ``/``, as Go's GetRef."""
    return "/".join(part for part in (account, org, project, *extra) if part)


class V1Paths:
    """v1 management paths, relative to ``{api}`` (the ``{..}`` fields are escaped with path_escape)."""

    registry_create = V1 + "/registry"  # POST ?space_ref=
    registry = V1 + "/registry/{registry_ref}/+"  # GET, PUT, DELETE
    space_registries = V1 + "/spaces/{space_ref}/+/registries"  # GET
    space_artifacts = V1 + "/spaces/{space_ref}/+/artifacts"  # GET
    registry_artifacts = V1 + "/registry/{registry_ref}/+/artifacts"  # GET
    artifact = V1 + "/registry/{registry_ref}/+/artifact/{artifact}/+"  # DELETE
    artifact_versions = V1 + "/registry/{registry_ref}/+/artifact/{artifact}/+/versions"  # GET
    version = V1 + "/registry/{registry_ref}/+/artifact/{artifact}/+/version/{version}"  # DELETE
    version_files = V1 + "/registry/{registry_ref}/+/artifact/{artifact}/+/version/{version}/files"  # GET


class V2Paths:
    metadata = V2 + "/metadata"  # GET, POST, DELETE
    copy = V2 + "/copy"  # POST (query only)


class V3Paths:
    registries = V3 + "/registries"
    packages = V3 + "/packages"
    versions = V3 + "/versions"
    files = V3 + "/files"
    bulkdelete = V3 + "/bulkdelete"
    system_info = V3 + "/system/info"


class PkgPaths:
    """Package endpoints, relative to the pkg base URL."""

    generic_files = PKG_PREFIX + "/{account}/{registry}/files/{filepath}"  # PUT GET HEAD DELETE
    # Resumable upload sessions (an hc extension, see hc.protocol.uploads):
    uploads = PKG_PREFIX + "/{account}/{registry}/uploads"  # POST
    upload = PKG_PREFIX + "/{account}/{registry}/uploads/{upload_id}"  # PATCH GET PUT DELETE
    # Many small files in one answer (an hc extension, see hc.protocol.batchread):
    batch_read = PKG_PREFIX + "/{account}/{registry}/batch-read"  # POST
    # Many small files in one upload (an hc extension, see hc.protocol.batchwrite):
    batch_write = PKG_PREFIX + "/{account}/{registry}/batch-write"  # POST


def generic_file_path(account: str, registry: str, package: str, version: str, relpath: str) -> str:
    """The generic upload/download path, built with raw ``/`` between segments as the Go CLI does
    since commit 329d705 (an escaped ``%2F`` made the SaaS answer 307). Each segment is escaped on
    its own so spaces, ``#`` and ``?`` in file names survive."""
    segments = [package, version, *relpath.split("/")]
    filepath = "/".join(path_escape(s) for s in segments)
    return f"{PKG_PREFIX}/{path_escape(account)}/{path_escape(registry)}/files/{filepath}"
