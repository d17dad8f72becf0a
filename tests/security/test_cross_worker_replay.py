"""Finding 4 of issue 15: a captured Authorization replayed across worker processes.

With ``--workers N`` each process keeps its own nonce counts; an INVITE answered over UDP and
replayed over TCP from the same address and port could land on the other process, which had
never seen the nonce count, and be accepted (6 of 12 here before the fix). Nonces now name the
process that issued them: on another process the replay gets a fresh 407, on the same one
the replayed count is refused (403). The probe runs ``siptwin up --workers 2`` in a network
namespace of its own (root, as CI has).
"""

from __future__ import annotations

from collections import Counter

from tests.support.probes import run_namespaced_probe


def test_a_replay_on_another_worker_is_challenged_never_accepted() -> None:
    outcomes = Counter(run_namespaced_probe("tests.security.replay_probe")["outcomes"])
    print(dict(outcomes))
    assert outcomes["accepted"] == 0, outcomes
    assert set(outcomes) <= {"challenged", "refused"}, outcomes
    # Both processes were reached, or the test proved nothing about crossing them.
    assert outcomes["challenged"] > 0 and outcomes["refused"] > 0, outcomes
