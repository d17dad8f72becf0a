"""A SIP user agent client over the core and the transport (the twin's outbound leg)."""
