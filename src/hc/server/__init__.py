"""The embedded registry: the Harness Artifact Registry API on aiohttp, SQLite and blob files.

Public entry points (everything else is internal):

- ``hc.server.app.create_app(data_dir=...)`` — the aiohttp application (tests, embedding)
- ``hc.server.embedded.serve_embedded(data_dir)`` — serve it in the caller's event loop on a free
  loopback port; ``ensure_local_credentials(data_dir)`` — the local account's API key
- ``hc.server.admin.run_server / create_api_key / fsck`` — what ``hc server ...`` runs
- ``hc.server.paths.default_data_dir()`` — where the store lives by default

Layout: ``routes/`` holds thin handlers per API (v1, v2, v3, files, uploads, accounts); ``metadata``
is the only module with SQL; ``blobs`` owns the bytes; ``uploads`` runs resumable upload sessions
(wire protocol in ``hc.protocol.uploads``); ``middlewares`` turns errors into JSON and checks keys.
The package imports only ``hc.protocol`` and ``hc.errors`` from the rest of hc.
"""
