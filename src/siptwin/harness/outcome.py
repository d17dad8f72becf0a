"""What a scenario step produced and how a failure is recorded; shared by the engine and interop.

:class:`Environment` is what one test worker shares between items (the twin and the
customer's app); :class:`StepOutcome` is one performed step; :class:`Failure` one broken
expectation.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..model.calls import CallRegistry
from ..sip.message import Response
from ..twin.config import Twin
from ..ua.client import CallResult, SipExchange
from .fixtures import DomainPool
from .provision import sdk_client
from .receiver import CallCreated, WebhookReceiver

T = TypeVar("T")


@dataclass
class Failure:
    kind: str  # unexpected-response, no-response, unexpected-answer, header-mismatch, ...
    message: str
    expected: Any = None
    actual: Any = None

    def as_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "expected": plain(self.expected),
                "actual": plain(self.actual)}


class Environment:
    """What one test worker shares between items: the twin and the customer's app."""

    def __init__(self, twin: Twin, receiver: WebhookReceiver) -> None:
        self.twin = twin
        self.receiver = receiver
        self._sdk: Any = None
        self.faults: dict[str, str] = {}  # region -> what to undo when the item ends
        self.domains = DomainPool()  # domains lent from item to item (fixtures.py)
        self._spare_sdks: list[Any] = []  # clients of finished item views, for the next ones
        self._sdk_turn = asyncio.Lock()  # one SDK call at a time (sdk_call)
        if receiver.call_created is None:  # what the seats of shared domains ask (receiver.py)
            receiver.call_created = call_created_by(twin)

    @property
    def sdk(self) -> Any:
        """One SDK client (and its HTTP connection pool) for every item of the worker."""
        if self._sdk is None:
            self._sdk = sdk_client(self.twin.api_url, self.twin.account_sid, self.twin.auth_token)
        return self._sdk

    async def sdk_call(self, call: Callable[..., T], *args: Any) -> T:
        """``call(sdk, *args)`` in a thread, one at a time for the worker. The SDK's work is
        Python on the CPU, and so is the twin serving it: items running together (batch.py)
        each waiting in the SDK at once held the GIL long enough for the twin to miss a
        0.3 s webhook timeout. Their waits still overlap; their SDK calls take turns."""
        async with self._sdk_turn:
            return await asyncio.to_thread(call, self.sdk, *args)

    def item_view(self) -> Environment:
        """The same twin, app, faults and domain pool with an SDK client of its own, for one of
        several items running at the same time: the twilio HTTP client keeps each response on
        itself before returning it, so two threads sharing one could read each other's."""
        view = copy.copy(self)
        view._sdk = self._spare_sdks.pop() if self._spare_sdks else None
        return view

    def release_view(self, view: Environment) -> None:
        if view._sdk is not None:
            self._spare_sdks.append(view._sdk)


def call_created_by(twin: Twin) -> CallCreated:
    """When ``twin`` created the call with a given SID: at once from the embedded twin's own
    registry, in a thread from a backend that asks its region processes."""

    async def created(sid: str) -> float | None:
        if not sid:
            return None
        calls = twin.calls
        call = (calls.by_sid(sid) if isinstance(calls, CallRegistry)
                else await asyncio.to_thread(calls.by_sid, sid))
        return None if call is None else call.created_at

    return created


@dataclass
class StepOutcome:
    action: str
    call_id: str
    responses: list[Response]
    messages: list[SipExchange]
    call: CallResult | None = None
    http_status: int | None = None
    error_code: int | None = None  # the Twilio code in a REST error answer
    detail: dict[str, Any] = field(default_factory=dict)  # what a peer run reported


def plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)
