"""What a diagnostic rule says about one call: a :class:`Finding`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ERROR = "error"  # why this call failed
WARNING = "warning"  # will bite in production
SEVERITIES = (ERROR, WARNING)


@dataclass(frozen=True)
class Finding:
    """One explained problem of one call.

    ``id`` is a stable kebab-case name (``source-not-in-acl``) scenarios and tests refer to;
    ``sentence`` says what happened in plain words, ``evidence`` quotes the exact header,
    SDP line or setting it is based on, ``fix`` says what to change, ``code`` is the Twilio
    error the real service would log (None where Twilio has none).
    """

    id: str
    severity: str
    sentence: str
    fix: str
    evidence: tuple[str, ...] = ()
    code: int | None = None
    rule: int | None = None  # the diagnostic rule of docs/pbx-pitfalls.md it implements
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    def as_record(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "sentence": self.sentence,
                "evidence": list(self.evidence), "fix": self.fix, "code": self.code,
                "rule": self.rule, **({"details": self.details} if self.details else {})}

    @property
    def more_info(self) -> str | None:
        return f"https://www.twilio.com/docs/api/errors/{self.code}" if self.code else None
