"""Async client for the Harness Artifact Registry REST API (aiohttp lives here and in server/ only)."""

from hc.api._http import USER_AGENT, RetryPolicy
from hc.api.client import Endpoint, RegistryClient, RegistryPage, connect
from hc.api.pagination import CursorPage, NumberedPage, iter_cursor_pages, iter_numbered_pages

__all__ = [
    "USER_AGENT",
    "CursorPage",
    "Endpoint",
    "NumberedPage",
    "RegistryClient",
    "RegistryPage",
    "RetryPolicy",
    "connect",
    "iter_cursor_pages",
    "iter_numbered_pages",
]
