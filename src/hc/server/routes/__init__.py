"""Request handlers, one module per API: ``accounts`` (login check), ``v1``, ``v2``, ``v3`` and
``files`` (generic package endpoints). Each parses the request, calls the catalog or the blob
store, and renders a ``hc.protocol.models`` shape; ``_common`` holds what they share."""
