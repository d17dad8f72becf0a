"""Random bytes handed out from blocks read from the system: never the same bytes twice, not
even across a fork (workers of `siptwin up --workers N` are forked)."""

from __future__ import annotations

import os

from siptwin.sip.entropy import random_bytes, random_hex


def test_random_bytes_have_the_length_asked_and_do_not_repeat() -> None:
    taken = [random_bytes(6) for _ in range(2_000)]  # several blocks
    assert all(len(chunk) == 6 for chunk in taken)
    assert len(set(taken)) == len(taken)
    assert len(random_bytes(5_000)) == 5_000  # more than a block: read directly
    text = random_hex(16)
    assert len(text) == 32 and int(text, 16) >= 0


def test_a_forked_child_does_not_hand_out_its_parents_bytes() -> None:
    random_bytes(1)  # the parent holds a partly used block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        os.write(write, random_bytes(32))
        os._exit(0)
    os.close(write)
    child = os.read(read, 64)
    os.close(read)
    os.waitpid(pid, 0)
    parent = random_bytes(32)
    assert len(child) == 32 and child != parent
