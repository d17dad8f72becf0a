"""When a node sheds new calls, and how it recognises them cheaply.

A node that receives more than it can answer must refuse new calls early, before the
pipeline and without keeping any state for them, and keep serving the calls already under
way: every new call taken then makes all calls late (callers retransmit, which costs more
again). Two measures, sans-IO here, fed by the node:

- A datagram: how long it waited in the socket's receive buffer (the endpoint reads the
  kernel's receive time). Under UDP overload the backlog builds there, out of sight of the
  event loop (it reads a batch, runs its timers, reads the next, and keeps time). When a
  queue stands there (even the datagram that waited least in a tick waited more than half
  ``wait_limit``), the node admits new calls at a *rate* (``AdmissionRate``): the rate at
  which it completes call setups, scaled each tick by how the standing wait compares with
  ``wait_limit``. It keeps taking as many new calls as it gets through and sheds the excess,
  spread evenly, rather than deciding per datagram (which refuses every new call while a
  backlog lasts, then takes every one once it has drained, and lets the calls taken in
  such a burst build the next backlog). A new call that waited longer than twice
  ``wait_limit`` is shed anyway: its answer would come after the caller's first
  retransmission (T1, 500 ms), and the call would cost twice.
- A stream (no such clock), or a UDP socket the kernel kept small (it drops before anything
  waits long): ``tick`` from a periodic timer with how late it fired, and the share of
  requests that retransmit a transaction the node holds. A late timer alone is not overload
  (on a machine shared with other work the process may simply not have been scheduled), and
  neither is a burst the loop keeps up with; both together mean the node receives more than
  it can answer, and it sheds while they hold.

``new_call_branch`` and ``stateless_refusal`` work on the bytes, so a shed call costs a look
at its header lines, not a parse.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

TICK_SECONDS = 0.05
STANDING_DATAGRAMS = 8  # read in a tick, at least, before their waits tell of a standing queue
RATE_RANGE = (0.7, 1.2)  # the admission rate against the completion rate, least and most
RATE_FLOOR = 10.0  # new calls a second a node under a standing queue still admits
QUIET_TICKS = 20  # ticks (1 s) with no queue and nothing shed before admission is unlimited
SMOOTHING = 0.2  # weight of a tick's completions in the moving completion rate


@dataclass
class AdmissionRate:
    """New calls a second admitted while a queue stands in the receive buffer: a token bucket
    refilled at the rate the node *completes* call setups (final responses to INVITEs, other
    than challenges), scaled by how the queue's standing wait (``least_wait``: the shortest
    wait of a tick's datagrams) compares with ``target``:

        rate = completing * (1 + (target - least_wait) / (2 * target)), within RATE_RANGE

    - at ``target`` the node admits what it completes: the queue holds;
    - over it, less (0.7x at 1.6 times the target, and beyond): the queue drains;
    - under it, more (up to 1.2x with no queue): the node finds its room again.

    Completions cannot outrun what the node gets through, so the rate follows its capacity
    without winding up: admissions beyond it only show as a longer queue a call's round trip
    later, by when a rate set from the wait alone would have let a burst in (and cut too
    far after it). Limiting begins when a queue stands, and ends after a second with neither
    a queue nor a call shed. Pure arithmetic of times and counts; the guard owns one per
    node."""

    target: float  # seconds of standing wait the rate aims at
    rate: float | None = None  # new calls a second; None: unlimited (no queue stands)
    tokens: float = 0.0
    completing: float = 0.0  # call setups completed a second (moving average over ticks)
    quiet: int = 0  # ticks in a row without a standing queue or a call shed

    def take(self) -> bool:
        """A new call: admitted when unlimited or a token is left."""
        if self.rate is None:
            return True
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def tick(self, elapsed: float, completed: int, shed: int, standing: bool,
             least_wait: float) -> bool:
        """``elapsed`` seconds since the previous tick, in which the node completed
        ``completed`` call setups and shed ``shed`` new calls; ``standing``: a queue stood
        through the tick, the least wait in it ``least_wait`` (0 when nothing was read).
        True when limiting begins."""
        elapsed = max(elapsed, 1e-3)
        self.completing += SMOOTHING * (completed / elapsed - self.completing)
        began = False
        if self.rate is None:
            if not standing:
                return False
            self.quiet, self.tokens, began = 0, 0.0, True
        else:
            self.quiet = 0 if standing or shed else self.quiet + 1
            if self.quiet >= QUIET_TICKS:
                self.rate = None  # the callers ask less than the node gets through
                return False
        low, high = RATE_RANGE
        scale = min(high, max(low, 1 + (self.target - least_wait) / (2 * self.target)))
        self.rate = max(RATE_FLOOR, self.completing * scale)
        # Tokens for the coming tick (as long as this one, if the loop is late); unused ones
        # lapse, so a lull is not paid back in a burst.
        self.tokens = min(self.tokens + self.rate * elapsed,
                          max(1.0, self.rate * max(elapsed, TICK_SECONDS)))
        return began


@dataclass
class OverloadGuard:
    lag_limit: float  # seconds a tick may fire late
    message_rate: float  # messages per second below which the node is never overloaded
    retransmission_share: float = 0.2  # of the messages since the previous tick
    messages: int = 0  # since the previous tick
    retransmissions: int = 0  # since the previous tick
    # seconds of standing wait in the socket buffer the admission rate aims at (it begins at
    # half this); a new call's INVITE that waited twice this on a busy node is shed outright
    wait_limit: float = 0.2
    shedding: bool = False
    busy: bool = False  # the previous tick counted message_rate or more
    standing: bool = False  # in the previous tick every datagram waited wait_limit / 2 or more
    shed: int = 0  # new calls refused or dropped since start
    shed_before_parsing: int = 0  # of them, recognised from their bytes
    episodes: int = 0  # times shedding began
    # branches of the new calls taken lately: a retransmission of one is not a new call
    taken: OrderedDict[bytes, None] = field(default_factory=OrderedDict, repr=False)
    admission: AdmissionRate = field(init=False)
    # branches of the new calls lately refused 503 statelessly, with the To tag of the 503:
    # their ACKs are absorbed from the bytes (ack_branch), not parsed to find that nothing
    # holds them, and a retransmitted INVITE gets the same 503 again
    refused: OrderedDict[bytes, bytes] = field(default_factory=OrderedDict, repr=False)
    shed_now: int = 0  # new calls by datagram shed since the previous tick
    completed_now: int = 0  # call setups the node completed since the previous tick

    def __post_init__(self) -> None:
        self.admission = AdmissionRate(target=self.wait_limit)

    def admits_new_call(self, branch: bytes, waited: float | None) -> bool:
        """Whether to take a new call's INVITE (top Via ``branch``).

        A datagram says how long it ``waited`` in the socket buffer. While a queue stands
        there the node admits new calls at the rate of its ``AdmissionRate`` (module
        docstring); one that waited more than twice ``wait_limit`` on a busy node is shed
        anyway. On a stream (``waited`` None: no such clock) the node sheds while
        ``shedding``. A retransmission of a dropped INVITE is judged afresh (a caller that
        retries when the node has room gets in; one refused 503 is refused again, with the
        same tag, before it gets here: ``refused``); one of an INVITE taken goes on."""
        taken = self.taken
        if branch in taken:
            return True
        if waited is None:
            if self.shedding:
                return False
        elif ((waited > 2 * self.wait_limit and (self.busy or self.standing))
              or not self.admission.take()):
            self.shed_now += 1
            return False
        _remember(taken, branch, TAKEN_BRANCHES)
        return True

    def refused_statelessly(self, branch: bytes, tag: bytes) -> None:
        """A new call's INVITE (top Via ``branch``) was answered 503 without a transaction,
        its To ``tag`` given."""
        _remember(self.refused, branch, REFUSED_BRANCHES, tag)

    def absorbs_ack(self, branch: bytes | None) -> bool:
        """Whether an ACK with top Via ``branch`` acknowledges a stateless 503 (RFC 3261
        §17.1.1.3: the ACK of a non-2xx final response repeats the INVITE's branch); the
        branch is forgotten then (a retransmitted INVITE is refused, and remembered, again)."""
        if branch is None or branch not in self.refused:
            return False
        del self.refused[branch]
        return True

    def tick(self, lateness: float, elapsed: float, datagrams: int = 0,
             least_wait: float = 0.0) -> bool | None:
        """One timer tick ``lateness`` seconds late, ``elapsed`` seconds after the previous
        one; since then the node read ``datagrams``, the shortest wait among them
        ``least_wait``. Returns True when shedding (by the ticks, or by an admission rate)
        begins, False when shedding by the ticks ends, None otherwise."""
        messages, retransmitted = self.messages, self.retransmissions
        busy = messages >= self.message_rate * max(elapsed, TICK_SECONDS)
        share = retransmitted / messages if messages else 0.0
        self.messages = self.retransmissions = 0
        self.busy = busy
        # A queue that stands: even the datagram that waited least waited long. A stall of
        # the process leaves a backlog that drains within a tick; overload keeps one. (A node
        # starved of CPU by other work may not read message_rate a second, yet be flooded.)
        self.standing = datagrams >= STANDING_DATAGRAMS and least_wait > self.wait_limit / 2
        limiting = self.admission.tick(elapsed, self.completed_now, self.shed_now,
                                       self.standing, least_wait)
        self.completed_now = self.shed_now = 0
        change: bool | None = None
        if not self.shedding and busy and (lateness > self.lag_limit
                                           or share > self.retransmission_share):
            self.shedding = True
            change = True
        elif self.shedding and (not busy or (lateness < self.lag_limit / 2
                                             and share < self.retransmission_share / 4)):
            self.shedding = False
            change = False
        if limiting:
            change = True
        self.episodes += change is True
        return change


# ---------------------------------------------------------------------- before parsing
#
# Shedding must cost a fraction of what taking the call would: a full parse of the INVITE
# alone is a tenth of a call's CPU. So a datagram that starts "INVITE " is looked at as
# bytes first: is it a new call (no To tag, no credentials), and which transaction (top Via
# branch)? Anything this look is not sure of is left to the full parse (on a stream the
# guard's ticks may still shed it there): the cost of a wrong guess is only a call not shed.

TAKEN_BRANCHES = 8192  # new calls' branches remembered, so their retransmissions go on
REFUSED_BRANCHES = 8192  # refused calls' branches remembered, so their ACKs cost no parse


def _remember(branches: OrderedDict[bytes, Any], branch: bytes, most: int,
              value: Any = None) -> None:
    """Add ``branch`` (with ``value``); past ``most``, the oldest one is forgotten."""
    branches[branch] = value
    if len(branches) > most:
        branches.popitem(last=False)


# The top Via's line: the first header line named Via (or v), at the start of a line (a folded
# continuation starts with a blank, so it never matches).
_VIA_LINE = re.compile(rb"\r\n(?:via|v)[ \t]*:", re.IGNORECASE)
# A branch parameter as the full parser reads it: its value a token, ended by the next
# parameter, the next Via value or the end of the line (anything else: unsure).
_BRANCH = re.compile(rb';[ \t]*branch[ \t]*=[ \t]*([^;,"\s]+)[ \t]*(?=[;,]|$)', re.IGNORECASE)
_TO_LINE = re.compile(rb"\r\n(?:to|t)[ \t]*:([^\r\n]*)")  # (in a lower-cased head)


def top_via_branch(data: bytes, end: int) -> bytes | None:
    """The branch of the top Via of a message whose header lines end at ``end`` (where its
    blank line begins, or its length), lower-cased; None when there is none or when unsure:
    no Via line, a folded one, a quoted string or a second Via value before the branch."""
    via = _VIA_LINE.search(data, 0, end)
    if via is None:
        return None
    start = via.end()
    stop = data.find(b"\r\n", start, end)
    if stop < 0:
        stop = end
    elif data[stop + 2:stop + 3] in (b" ", b"\t"):
        return None  # its value goes on on a folded line
    branch = _BRANCH.search(data, start, stop)
    if branch is None:
        return None
    at = branch.start()
    if data.find(b",", start, at) >= 0 or data.find(b'"', start, at) >= 0:
        return None  # another Via value first (its own branch, if any, counts), or a quote
    return branch.group(1).lower()


def _head_end(data: bytes) -> int:
    end = data.find(b"\r\n\r\n")
    return len(data) if end < 0 else end


def new_call_branch(data: bytes) -> bytes | None:
    """The top Via branch of ``data`` when it is plainly a new call's INVITE (outside any
    dialog, without credentials); None for any other message, or when unsure."""
    if not data.startswith(b"INVITE "):
        return None
    end = _head_end(data)
    head = data[:end].lower()
    if b"\r\n " in head or b"\r\n\t" in head:
        return None  # a folded header: leave it to the parser
    if b"authorization" in head:
        return None  # answering a challenge: a call under way
    to = _TO_LINE.search(head)
    if to is None or b"tag" in to.group(1) or _TO_LINE.search(head, to.end()) is not None:
        return None  # in a dialog, or not sure (a second To line)
    return top_via_branch(head, end)


def ack_branch(data: bytes) -> bytes | None:
    """The top Via branch of an ACK, from its bytes; None for any other message, or when
    unsure (top_via_branch)."""
    if not data.startswith(b"ACK "):
        return None
    return top_via_branch(data, _head_end(data))


# The header lines a response copies from its request (RFC 3261 §8.2.6.2), long or compact:
# their names begin with distinct letters (v, f, t, and c or i for Call-ID and CSeq).
_REPLY_LINES = re.compile(rb"\r\n((?:via|v|from|f|to|t|call-id|i|cseq)[ \t]*:[^\r\n]*)",
                          re.IGNORECASE)
_RPORT = re.compile(rb";[ \t]*rport[ \t]*(?=[;=]|$)", re.IGNORECASE)
_V, _T = ord("v"), ord("t")


def stateless_refusal(data: bytes, source_host: str, source_port: int, status_line: bytes,
                      headers: bytes, tag: bytes) -> bytes | None:
    """A response to the INVITE ``data`` built from its bytes (RFC 3261 §8.2.6: Via, From,
    To with our ``tag``, Call-ID and CSeq copied line by line), when its top Via names exactly
    the address it came from and asks nothing else of the reply's routing (rport, maddr,
    received); else None, and the caller answers through the full parse. ``status_line`` and
    ``headers`` (the ones to add after those copied) each end in CRLF."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or data.find(b"\r\n ", 0, end) >= 0 or data.find(b"\r\n\t", 0, end) >= 0:
        return None  # no blank line, or a folded one: left to the parser
    lines = _REPLY_LINES.findall(data, 0, end)
    top_via = -1
    for at, line in enumerate(lines):
        first = line[0] | 0x20  # (lower case)
        if first == _V:
            if top_via < 0:
                top_via = at
        elif first == _T:
            lines[at] = line + b";tag=" + tag
    if top_via < 0:
        return None
    via = _reply_via(lines[top_via], source_host, source_port)
    if via is None:
        return None
    lines[top_via] = via
    return (status_line + b"\r\n".join(lines) + b"\r\n" + headers
            + b"Content-Length: 0\r\n\r\n")


def _reply_via(line: bytes, source_host: str, source_port: int) -> bytes | None:
    """The top Via line as the reply carries it, when the reply goes back to the source: the
    Via asks for ``rport`` (RFC 3581: stamped with the source) or its sent-by is the source;
    None otherwise, or when unsure (several values, a quoted string, maddr or received)."""
    colon = line.find(b":") + 1
    low = line.lower()
    if (line.find(b",", colon) >= 0 or line.find(b'"', colon) >= 0
            or low.find(b"maddr", colon) >= 0 or low.find(b"received", colon) >= 0):
        return None
    rport = _RPORT.search(line, colon)
    if rport is not None:
        if line[rport.end():rport.end() + 1] == b"=":
            return None  # a value already: not ours to stamp
        return b"%s;rport=%d;received=%s%s" % (line[:rport.start()], source_port,
                                               source_host.encode(), line[rport.end():])
    sent = line[colon:].split(b";", 1)[0].split()
    if sent[-1:] != [f"{source_host}:{source_port}".encode()]:
        return None
    return line
