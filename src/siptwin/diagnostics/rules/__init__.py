"""The rules, one module per area; importing this package registers them in this order."""

from . import (  # noqa: F401
    access,
    authentication,
    dial,
    dialog,
    headers,
    media,
    numbers,
    register,
    routing,
    webhook,
    zz_fallback,
)
