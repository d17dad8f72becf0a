# The embedded-twin fixtures of the region tests serve the fault tests too.
from ..regions.conftest import harness, twin  # noqa: F401
