"""WebhookParams is made once per call with quicken's __init__ (sip/frozen.py): it must make
what the dataclass's own makes."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from siptwin.model.presentation import WebhookParams
from siptwin.sip.frozen import QUICKENED

texts = st.text(max_size=8)


def test_webhook_params_are_quickened() -> None:
    assert WebhookParams in QUICKENED


@given(st.lists(texts, min_size=8, max_size=8), st.none() | texts,
       st.lists(st.tuples(texts, texts), max_size=3), st.booleans())
def test_quickened_webhook_params_match_the_generated_init(
        values: list[str], username: str | None, headers: list[tuple[str, str]],
        by_keyword: bool) -> None:
    args = (*values, username, tuple(headers))
    names = [f.name for f in dataclasses.fields(WebhookParams)]
    if by_keyword:
        quick = WebhookParams(**dict(zip(names, args, strict=True)))
    else:
        quick = WebhookParams(*args)
    reference = object.__new__(WebhookParams)
    WebhookParams.__init__.generated(reference, *args)  # type: ignore[attr-defined]
    assert quick == reference
    assert quick.parameters("ringing") == reference.parameters("ringing")
    try:
        quick.call_sid = "CA0"  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("WebhookParams is no longer frozen")
