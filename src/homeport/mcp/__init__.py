"""homeport as a Model Context Protocol server (``homeport mcp``), safe by default.

``policy`` (pure: allowlists, the kill rule, scrubbing secrets), ``schemas`` (the tools' JSON
Schemas, data), ``session`` (one connection's state and cleanup), ``tools`` and ``services``
(the tools, over the library's records), ``server`` (the official SDK's low-level server).
The SDK is imported only by ``server``, so the rest stays cheap to import and test.
"""
