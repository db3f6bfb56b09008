"""Hostile values a caller can pass to a log call, as hypothesis strategies.

Each kind of value that broke a sink or a command once is here: ints of any size (past
Python's 4,300-digit int-to-text limit too), the extreme finite floats, infinities and NaN,
bytes, containers holding themselves, objects whose ``__repr__``/``__str__``/``__float__``/
``__hash__``/``__eq__``/``__iter__`` raise, subclasses of int/float/str/dict with hostile
methods, numpy and torch scalars.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
from hypothesis import strategies as st


class Raises:
    """Every conversion raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __float__(self) -> float:
        raise RuntimeError("no float")

    def __index__(self) -> int:
        raise RuntimeError("no index")

    def __hash__(self) -> int:
        raise RuntimeError("no hash")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    def __bool__(self) -> bool:
        raise RuntimeError("no bool")

    def __iter__(self) -> Any:
        raise RuntimeError("no iter")


class HostileInt(int):
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    __hash__ = int.__hash__

    def __int__(self) -> int:
        raise RuntimeError("no int")

    __index__ = __int__

    def __float__(self) -> float:
        raise RuntimeError("no float")


class HostileFloat(float):
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__

    def __float__(self) -> float:
        raise RuntimeError("no float")


class HostileStr(str):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    __hash__ = str.__hash__


class HostileDict(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        raise RuntimeError("no items")

    def values(self) -> Any:
        raise RuntimeError("no values")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _recursive_list() -> list[Any]:
    value: list[Any] = [1.0]
    value.append(value)
    return value


def _recursive_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1.0}
    value["self"] = value
    return value


def _torch_scalars() -> list[Any]:
    try:
        import torch
    except ImportError:
        return []
    return [
        torch.tensor(float("nan")),
        torch.tensor(2**62),
        torch.tensor(1e38, dtype=torch.float32),
        torch.tensor(3.5, dtype=torch.bfloat16),
        torch.tensor(True),
    ]


FLOAT_EDGES = [
    sys.float_info.max,
    -sys.float_info.max,
    sys.float_info.min,
    5e-324,
    -0.0,
    math.inf,
    -math.inf,
    math.nan,
]
INT_EDGES = [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 2**1023, 2**1024]

huge_ints = st.builds(
    lambda n, sign: sign * 10**n + 7, st.integers(4290, 6000), st.sampled_from([1, -1])
)
numbers = st.one_of(
    st.integers(),
    huge_ints,
    st.sampled_from(INT_EDGES),
    st.floats(),
    st.sampled_from(FLOAT_EDGES),
)
objects = st.one_of(
    st.builds(Raises),
    st.builds(HostileInt, st.one_of(st.integers(), huge_ints)),
    st.builds(HostileFloat, st.floats()),
    st.builds(HostileStr, st.text(max_size=10)),
    st.builds(lambda: HostileDict(a=1.0)),
    st.builds(_recursive_list),
    st.builds(_recursive_dict),
    st.sampled_from(
        [
            np.float64("nan"),
            np.float32("inf"),
            np.int64(-(2**63)),
            np.uint64(2**64 - 1),
            np.longdouble("1e4000"),
            np.float16(65504),
            np.bool_(True),
            *_torch_scalars(),
        ]
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    st.text(max_size=20),
    st.sampled_from(["\ud800", "NaN", "Infinity", "=cmd|' /C calc'!A0", "\x1b[31m", "%s%d"]),
    st.binary(max_size=10),
    objects,
)
#: Any value a caller might pass, nested a little.
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), children, max_size=3),
    ),
    max_leaves=6,
)
