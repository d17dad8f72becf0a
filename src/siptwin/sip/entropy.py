"""Random bytes for identifiers, tags and nonce salts, read from the system in blocks.

Each call takes random bytes several times (a nonce salt, a Call SID, RTP SSRC); one
``os.urandom`` system call per use was a measurable part of a call's CPU. The bytes are the
same cryptographically secure ones, read 4 KiB at a time and handed out in order, never twice.
Keys (SRTP master keys) still come from ``secrets`` directly.
"""

from __future__ import annotations

import os
import threading

_BLOCK = 4096

_lock = threading.Lock()
_pool = b""
_offset = 0


def random_bytes(count: int) -> bytes:
    """``count`` bytes from the system's secure random source."""
    global _pool, _offset
    if count > _BLOCK // 4:
        return os.urandom(count)
    with _lock:
        end = _offset + count
        if end > len(_pool):
            _pool, _offset, end = os.urandom(_BLOCK), 0, count
        chunk = _pool[_offset:end]
        _offset = end
    return chunk


def random_hex(count: int) -> str:
    """``count`` random bytes as ``2 * count`` lower-case hex digits."""
    return random_bytes(count).hex()


def _forget_after_fork() -> None:
    # A forked worker must not hand out the bytes its parent will hand out too.
    global _pool, _offset
    _pool, _offset = b"", 0


os.register_at_fork(after_in_child=_forget_after_fork)
