"""siptwin: an offline, multi-region twin of Twilio's SIP Domain service."""

import time

__version__ = "0.1.0"
# The first siptwin module any process imports: where its start-up is counted from when the
# process existed before it ran Python (cli._seconds_since_start).
IMPORTED_AT = time.monotonic()
