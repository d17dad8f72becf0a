"""The files of a twin's state directory (``siptwin up --state DIR``), named once.

Several packages read them - the control plane its database, ``siptwin down`` the pid,
``siptwin explain`` the API address - so their names live here, below all of them.
"""

from __future__ import annotations

DATABASE_FILE = "control-plane.sqlite3"  # the control plane's SQLite state
PID_FILE = "siptwin.pid"  # the pid of a running `siptwin up`
API_FILE = "api.json"  # where that twin's REST API listens, and its account
LOG_FILE = "siptwin.log"  # the output of `siptwin up --detach`
TLS_DIR = "tls"  # the twin's certificate and key
# The registrar's bindings, shared by the processes of `siptwin up --workers N`.
REGISTRATIONS_FILE = "registrations.sqlite3"
