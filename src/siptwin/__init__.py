"""siptwin: an offline, multi-region twin of Twilio's SIP Domain service."""

__version__ = "0.1.0"
