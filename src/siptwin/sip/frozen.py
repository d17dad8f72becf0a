"""Frozen value classes made at a lower cost.

A frozen dataclass's generated ``__init__`` stores each field with
``object.__setattr__(self, name, value)``: a global and an attribute look-up and a generic
attribute store per field. The SIP path makes some fifty such objects a call (Vias, name-addrs,
URIs, the transaction layer's effects, SDP answers), and those stores were the largest single
item of its profile. :func:`quicken` gives a frozen dataclass an ``__init__`` that stores each
field straight through its slot (or, without slots, into the instance's ``__dict__``) instead:
the same object, a third faster, still frozen. A class it cannot treat the same way
(``__post_init__``, default factories, keyword-only fields, InitVars, descriptors named as
fields, a class compiled with mypyc) is left as it is. tests/sip/test_call_path_shortcuts.py
holds every quickened class to its generated ``__init__``.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from typing import Any

QUICKENED: list[type] = []  # (for the tests)


def quicken(cls: type) -> type:
    """Give frozen dataclass ``cls`` the faster ``__init__`` (see above); returns it."""
    init = cls.__dict__.get("__init__")
    fields = _plain_fields(cls, init)
    if fields is None:
        return cls
    slots = [cls.__dict__.get(f.name) for f in fields]
    slotted = all(isinstance(slot, types.MemberDescriptorType) for slot in slots)
    if not slotted and ("__slots__" in cls.__dict__ or any(
            hasattr(type(inspect.getattr_static(cls, f.name, None)), "__set__") for f in fields)):
        return cls  # (neither slots nor plain instance attributes: a descriptor would see them)
    env: dict[str, Any] = {}
    signature = []
    # A slot is stored through its descriptor; without slots, a field is an entry of the
    # instance's __dict__ (what object.__setattr__ writes when no descriptor intervenes).
    body = [] if slotted else ["        own = self.__dict__\n"]
    for i, (f, slot) in enumerate(zip(fields, slots, strict=True)):
        if slotted:
            env[f"_s{i}"] = slot.__set__  # type: ignore[union-attr]
        if f.default is not dataclasses.MISSING:
            env[f"_d{i}"] = f.default
        if f.init:
            signature.append(f.name if f.default is dataclasses.MISSING else f"{f.name}=_d{i}")
        if slotted:  # (an init-less field: its default, as the dataclass's own sets it)
            body.append(f"        _s{i}(self, {f.name if f.init else f'_d{i}'})\n")
        elif f.init:  # (without slots an init-less field is read from the class's default)
            body.append(f"        own[{f.name!r}] = {f.name}\n")
    source = (f"def make({', '.join(env)}):\n"
              f"    def __init__(self, {', '.join(signature)}):\n{''.join(body)}"
              f"    return __init__\n")
    namespace: dict[str, Any] = {}
    exec(source, {}, namespace)  # noqa: S102 (source built above from field names only)
    fast = namespace["make"](**env)
    fast.__qualname__ = f"{cls.__qualname__}.__init__"
    fast.__module__ = cls.__module__
    fast.generated = init  # (the dataclass's own, for the tests)
    type.__setattr__(cls, "__init__", fast)
    QUICKENED.append(cls)
    return cls


def _plain_fields(cls: Any, init: Any) -> list[Any] | None:
    """The fields of frozen dataclass ``cls`` when ``init`` is its generated __init__ and
    takes exactly its init fields, positionally, the others having plain defaults; None
    otherwise."""
    if not isinstance(init, types.FunctionType) or not dataclasses.is_dataclass(cls):
        return None
    dataclass_params = getattr(cls, "__dataclass_params__", None)
    if dataclass_params is None or not dataclass_params.frozen or hasattr(cls, "__post_init__"):
        return None
    fields = list(dataclasses.fields(cls))
    if any(f.kw_only or f.default_factory is not dataclasses.MISSING
           or (not f.init and f.default is dataclasses.MISSING) for f in fields):
        return None
    params = list(inspect.signature(init).parameters.values())[1:]
    if [p.name for p in params] != [f.name for f in fields if f.init]:
        return None  # (an InitVar, or something else the dataclass added)
    if any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params):
        return None
    return fields


__all__ = ["QUICKENED", "quicken"]
