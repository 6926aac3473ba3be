"""Schemathesis against a running ``hc server run``, with the shared Harness OpenAPI files.

For every operation the registry implements, Hypothesis generates requests from the spec (bounded:
a few examples each) and each response must be no 5xx and must match the documented schema for
its status. Requests are generated twice: with the account-bearing parameters pinned to the key's
account (so they reach the handlers' success paths) and free (so they exercise the refusals).

The spec has a few internal inconsistencies that no Harness server could satisfy either; they are
patched in ``ERRATA`` below, each with its reason. Everything else is validated as published.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from hc.server.embedded import create_api_key  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "harness-api"
ACCOUNT = "local"
REGISTRY = "gen"
MAX_EXAMPLES = 12

# (spec file, base path on the server, implemented operation ids)
SPECS = [
    (
        "ar.yaml",
        "/gateway/har/api/v1",
        [
            "CreateRegistry",
            "GetRegistry",
            "ModifyRegistry",
            "DeleteRegistry",
            "GetAllRegistries",
            "GetAllHarnessArtifacts",
            "GetAllArtifactsByRegistry",
            "DeleteArtifact",
            "GetAllArtifactVersions",
            "DeleteArtifactVersion",
            "GetArtifactFiles",
        ],
    ),
    (
        "ar_v2.yaml",
        "/gateway/har/api/v2",
        ["GetMetadata", "UpdateMetadata", "DeleteMetadata", "CopyRegistryPackage"],
    ),
    (
        "ar_v3.yaml",
        "/gateway/har/api/v3",
        [
            "GetSystemInfo",
            "BulkDeleteArtifacts",
            "ListRegistriesV3",
            "ListPackagesV3",
            "ListVersionsV3",
            "ListFilesV3",
        ],
    ),
    (
        "ar_pkg.yaml",
        "",
        [
            "uploadGenericFileToPath",
            "downloadGenericFileFromPath",
            "headGenericFileAtPath",
            "deleteGenericFileFromPath",
        ],
    ),
]


def _errata(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    if name == "ar.yaml":
        schemas = spec["components"]["schemas"]
        # ListArtifactVersion requires "artifacts" but names its list "artifactVersions" (the Go
        # client reads artifactVersions; the required entry cannot be satisfied by Harness either).
        schemas["ListArtifactVersion"]["required"] = ["artifactVersions"]
        # ArtifactVersionMetadata requires "latestVersion", which it does not define; we send it,
        # so nothing to patch. Registry requires "name"/"type" outside its properties; sent too.
    return spec


PINNED_PATH = {
    "space_ref": ACCOUNT,
    "registry_ref": f"{ACCOUNT}/{REGISTRY}",
    "accountId": ACCOUNT,
    "registry": REGISTRY,
    "artifact": "pkg",
    "version": "1.0",
    "filepath": "pkg/1.0/file.txt",
}
PINNED_QUERY = {
    "account_identifier": ACCOUNT,
    "space_ref": ACCOUNT,
    "registry_identifier": REGISTRY,
    "src_registry_identifier": REGISTRY,
    "target_registry_identifier": "copy-target",
}


@dataclass
class Server:
    base_url: str
    token: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(server: Server, method: str, path: str, body: bytes | None = None, content_type: str = "") -> None:
    request = urllib.request.Request(server.base_url + path, data=body, method=method)
    request.add_header("x-api-key", server.token)
    if content_type:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=30):
        pass


def _seed(server: Server) -> None:
    """A registry with a package, a version and a file, so success paths have data to render."""
    for identifier in (REGISTRY, "copy-target"):
        body = json.dumps({"identifier": identifier, "packageType": "GENERIC"}).encode()
        try:
            _call(
                server, "POST", f"/gateway/har/api/v1/registry?space_ref={ACCOUNT}", body, "application/json"
            )
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise
    _call(server, "PUT", f"/pkg/{ACCOUNT}/{REGISTRY}/files/pkg/1.0/file.txt?overwrite=true", b"seed bytes")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("conformance-store")
    token = create_api_key(data_dir, ACCOUNT)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HC_HOME", "XDG_DATA_HOME")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hc", "server", "run", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stderr is not None
        assert "serving" in proc.stderr.readline().decode()
        yield Server(base_url=f"http://127.0.0.1:{port}", token=token)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def _operations() -> list[tuple[str, str, Any]]:
    found = []
    for name, base, ids in SPECS:
        raw = yaml.safe_load((SHARED / name).read_text())
        schema = schemathesis.openapi.from_dict(_errata(name, raw)).include(operation_id=ids)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert sorted(op.definition.raw["operationId"] for op in operations) == sorted(ids)
        found.extend((base, op.definition.raw["operationId"], op) for op in operations)
    return found


if not SHARED.is_dir():  # the shared folder sits beside the repository; without it there is nothing to check
    pytest.skip(f"shared OpenAPI files not found at {SHARED}", allow_module_level=True)

OPERATIONS = _operations()


def _pinned(operation: Any) -> dict[str, dict[str, Any]]:
    names = {(p.location, p.name) for p in operation.iter_parameters()}
    return {
        "path_parameters": {k: v for k, v in PINNED_PATH.items() if ("path", k) in names},
        "query": {k: v for k, v in PINNED_QUERY.items() if ("query", k) in names},
    }


@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "free"])
@pytest.mark.parametrize(("base", "operation_id", "operation"), OPERATIONS, ids=[op[1] for op in OPERATIONS])
def test_conformance(server: Server, base: str, operation_id: str, operation: Any, pinned: bool) -> None:
    strategy = operation.as_strategy(**(_pinned(operation) if pinned else {}))
    headers = {"x-api-key": server.token}
    _seed(server)

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        case.call_and_validate(
            base_url=server.base_url + base,
            headers=headers,
            checks=[not_a_server_error, response_schema_conformance],
            timeout=30,
        )

    check()


def _operation(operation_id: str) -> tuple[str, Any]:
    for base, found_id, operation in OPERATIONS:
        if found_id == operation_id:
            return base, operation
    raise KeyError(operation_id)


# Well-formed requests for the mutating operations, whose generated bodies rarely name real data:
# their success responses are validated against the spec here, in order.
KNOWN_GOOD: list[tuple[str, dict[str, Any]]] = [
    (
        "CreateRegistry",
        {"query": {"space_ref": ACCOUNT}, "body": {"identifier": "made-here", "packageType": "GENERIC"}},
    ),
    (
        "ModifyRegistry",
        {
            "path_parameters": {"registry_ref": f"{ACCOUNT}/made-here"},
            "body": {"identifier": "made-here", "packageType": "GENERIC", "description": "changed"},
        },
    ),
    (
        "uploadGenericFileToPath",
        {
            "path_parameters": {"accountId": ACCOUNT, "registry": "made-here", "filepath": "p/1/new.bin"},
            "body": b"x",
        },
    ),
    (
        "UpdateMetadata",
        {
            "query": {"account_identifier": ACCOUNT},
            "body": {
                "registryIdentifier": "made-here",
                "package": "p",
                "metadata": [{"key": "k", "value": "v"}],
            },
        },
    ),
    (
        "DeleteMetadata",
        {
            "query": {"account_identifier": ACCOUNT},
            "body": {
                "registryIdentifier": "made-here",
                "package": "p",
                "metadata": [{"key": "k", "value": "v"}],
            },
        },
    ),
    (
        "CopyRegistryPackage",
        {
            "query": {
                "account_identifier": ACCOUNT,
                "src_registry_identifier": "made-here",
                "target_registry_identifier": "copy-target",
                "src_artifact": "p",
                "src_version": "1",
            }
        },
    ),
    (
        "BulkDeleteArtifacts",
        {
            "query": {"account_identifier": ACCOUNT},
            "body": {"packages": "p*", "versions": "", "registry": "made-here", "dryRun": True},
        },
    ),
    (
        "DeleteArtifactVersion",
        {"path_parameters": {"registry_ref": f"{ACCOUNT}/made-here", "artifact": "p", "version": "1"}},
    ),
    ("DeleteArtifact", {"path_parameters": {"registry_ref": f"{ACCOUNT}/copy-target", "artifact": "p"}}),
    ("DeleteRegistry", {"path_parameters": {"registry_ref": f"{ACCOUNT}/made-here"}}),
]


def test_success_responses_of_mutations_match_the_spec(server: Server) -> None:
    _seed(server)
    for operation_id, parts in KNOWN_GOOD:
        base, operation = _operation(operation_id)
        case = operation.Case(**parts)
        response = case.call(base_url=server.base_url + base, headers={"x-api-key": server.token}, timeout=30)
        assert response.status_code < 300, (operation_id, response.status_code, response.text)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
