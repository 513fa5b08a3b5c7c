"""The TLS context outgoing requests share.

Building an ``ssl.SSLContext`` loads the whole CA bundle (certifi's) and costs tens of milliseconds of CPU,
held under the GIL; an ``httpx.Client`` made without one builds its own. Document fetches and webhook
attempts make a client per request, so they share this one context instead: a client-side context is safe
to use from many threads at once (its settings are not changed after it is made).
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """The default trust store (certifi's CAs, hostname checks on), made once per process."""
    return httpx.create_ssl_context()
