"""JSON exactly as JavaScript writes it (``JSON.stringify``) and strictly as it parses it (``JSON.parse``).

Rule: ``dumps`` output is byte for byte what Node would send for the same value; ``loads`` raises only
``LocalProtocolError`` on bad input, whatever the input.
"""

from __future__ import annotations

import gc
import json
import json.encoder
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import accumulate
from typing import Any, Final

from ..errors import LocalProtocolError

__all__ = ["DEFAULT_MAX_DEPTH", "cyclic_gc_paused", "dumps", "loads"]

DEFAULT_MAX_DEPTH: Final = 32
"""How deeply arrays and objects may nest in a received payload, by default."""

# ---------------------------------------------------------------------------------------------------------
# Encoding
#
# Fast path: the stdlib C encoder, built once (``json.dumps`` with non-default arguments builds a new
# ``JSONEncoder`` on every call). Its output equals JSON.stringify's except for three things, each of them
# cheap to detect on the result:
#   * floats: Python's repr differs from Number#toString for integral values ("1.0"), for exponents
#     ("1e-07", "1e+16") and for -0.0; non-finite values raise (allow_nan=False). Any float repr contains
#     a digit followed by "." or "e", so a result without that pattern holds no float at all; when it
#     holds one, a walk of the value decides whether a float really needs JS formatting;
#   * lone surrogates: JSON.stringify (ES2019) escapes them; Python writes them raw. A pure-ASCII
#     result (str.isascii() is O(1)) cannot contain one;
#   * circular or very deep values: RecursionError in C; the slow path reports them as ValueError.
#
# Measured with timeit (CPython 3.11.7, best of 5 x 200k runs, a shared and busy machine, so ranges over
# several runs) for the typical event payload ["chat", {"user": "ann", "text": "hello", "n": 3}]:
#     jsonjs.dumps                                                  2.7 - 4.6 us
#     json.dumps(..., separators=(",", ":"), ensure_ascii=False)    5.2 - 9.1 us
#     ratio                                                         0.48 - 0.69 (worst run seen: 0.85)
# The gain comes from building the C encoder once; tests/protocol/test_proto_jsonjs.py checks <= 1.5x.
# ---------------------------------------------------------------------------------------------------------

_MAYBE_FLOAT: Final = re.compile(r"\d[.e]")
_SURROGATES: Final = re.compile(r"[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]")
_encode_str: Final[Callable[[str], str]] = json.encoder.encode_basestring


def _unsupported(obj: object) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _make_c_encoder() -> Callable[[Any], str] | None:
    maker = getattr(json.encoder, "c_make_encoder", None)
    if maker is None:  # pragma: no cover - CPython always has _json
        return None
    # markers=None: no shared mutable state (thread-safe); a cycle ends in RecursionError instead.
    encoder = maker(None, _unsupported, _encode_str, None, ":", ",", False, False, False)

    def encode(obj: Any) -> str:
        return "".join(encoder(obj, 0))

    return encode


_c_encode: Final = _make_c_encoder()


def _fix_surrogate(match: re.Match[str]) -> str:
    text = match.group()
    if len(text) == 2:  # a high + low pair: JavaScript sees one well-formed character
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    return f"\\u{ord(text):04x}"


def _fix_surrogates(out: str) -> str:
    if out.isascii() or _SURROGATES.search(out) is None:
        return out
    return _SURROGATES.sub(_fix_surrogate, out)


def js_number(value: float) -> str:
    """Format a float as JavaScript's ``Number.prototype.toString()`` does.

    Args:
        value: Any float (NaN and the infinities give "NaN", "Infinity", "-Infinity").

    Returns:
        The shortest round-trip digits laid out by the ECMAScript Number::toString rules.
    """
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"  # also for -0.0
    sign = "-" if value < 0 else ""
    mantissa, _, exp = repr(abs(value)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    point = len(int_part) + (int(exp) if exp else 0)  # value = 0.<digits> * 10**point
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exponent = f"e+{e}" if e >= 0 else f"e-{-e}"
    if k == 1:
        return sign + digits + exponent
    return sign + digits[0] + "." + digits[1:] + exponent


def _float_differs(value: float) -> bool:
    """True when repr(value) is not what JavaScript writes (integral, exponent, -0.0, non-finite)."""
    return value.is_integer() or not math.isfinite(value) or "e" in repr(value)


def _needs_slow_path(obj: Any) -> bool:
    """Walk ``obj``: does any float (value or key) need JavaScript formatting?"""
    stack = [obj]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > 1_000_000:  # pragma: no cover - absurd sizes: let the exact encoder decide
            return True
        if isinstance(item, float):
            if _float_differs(item):
                return True
        elif isinstance(item, dict):
            for key in item:
                if isinstance(key, float) and _float_differs(key):
                    return True
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return js_number(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _slow_encode(obj: Any, parts: list[str], active: set[int]) -> None:
    if isinstance(obj, str):
        parts.append(_encode_str(obj))
    elif obj is None:
        parts.append("null")
    elif obj is True:
        parts.append("true")
    elif obj is False:
        parts.append("false")
    elif isinstance(obj, int):
        parts.append(int.__repr__(obj))
    elif isinstance(obj, float):
        parts.append(js_number(obj) if math.isfinite(obj) else "null")
    elif isinstance(obj, list | tuple | dict):
        marker = id(obj)
        if marker in active:
            raise ValueError("Circular reference detected")
        active.add(marker)
        if isinstance(obj, dict):
            parts.append("{")
            first = True
            for key, value in obj.items():
                if not first:
                    parts.append(",")
                first = False
                parts.append(_encode_str(_key(key)))
                parts.append(":")
                _slow_encode(value, parts, active)
            parts.append("}")
        else:
            parts.append("[")
            for index, value in enumerate(obj):
                if index:
                    parts.append(",")
                _slow_encode(value, parts, active)
            parts.append("]")
        active.discard(marker)
    else:
        _unsupported(obj)


def _exact_dumps(obj: Any) -> str:
    parts: list[str] = []
    try:
        _slow_encode(obj, parts, set())
    except RecursionError:
        raise ValueError("value nested too deeply to encode") from None
    return "".join(parts)


def dumps(obj: Any) -> str:
    """Serialize ``obj`` exactly as JavaScript's ``JSON.stringify`` would.

    Compact separators, dict order kept, non-ASCII written as is, control characters escaped as JS does
    (lowercase ``\\u00XX``), lone surrogates escaped (well-formed JSON.stringify), numbers formatted as
    ``Number#toString`` (``1.0`` -> ``1``, ``1e21`` -> ``1e+21``, ``-0.0`` -> ``0``), NaN and infinities
    as ``null``, tuples as arrays. Dict keys: str as is, numbers as JS converts them, bool/None as
    ``true``/``false``/``null``.

    Deviations from JS, on purpose: dict keys keep insertion order (JS lists integer-like keys first);
    ints beyond 2**53 are written exactly (JS cannot hold them).

    Args:
        obj: A JSON-compatible value (dict, list, tuple, str, int, float, bool, None).

    Returns:
        The JSON text.

    Raises:
        TypeError: ``obj`` holds a value of another type, or a dict key of an unsupported type.
        ValueError: ``obj`` is circular or nested too deeply for the encoder.
    """
    if _c_encode is not None:
        try:
            out = _c_encode(obj)
        except (ValueError, RecursionError):
            # Non-finite float (allow_nan=False), or a cycle / deep nesting: the exact encoder decides.
            return _fix_surrogates(_exact_dumps(obj))
        if _MAYBE_FLOAT.search(out) is not None and _needs_slow_path(obj):
            out = _exact_dumps(obj)
        return _fix_surrogates(out)
    return _fix_surrogates(_exact_dumps(obj))  # pragma: no cover


# ---------------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------------

# The nesting pre-check runs in linear time, whatever the input, with no pattern that can backtrack
# (the regex it replaces, '"[^"\\]*(?:\\.[^"\\]*)*"', rescanned the rest of the text from every escaped
# quote of an unclosed string: issue 11, 32 KB took 2.6 to 4 s, 96 KB 43 s):
#   1. escapes go with str.replace, backslash pairs first, then escaped quotes (in valid JSON a run of
#      backslashes starts an escape, so pairing from the left is how JSON reads it): every quote left
#      is a string delimiter;
#   2. strings go with one single-quantifier pattern (an unclosed one runs to the end);
#   3. what is left is reduced to its brackets by bytes.translate, as "(" and ")"; a run of
#      max_depth + 1 "(" is too deep at once;
#   4. a few passes of bytes.replace(b"()", b"") each take one level off a balanced skeleton (they remove
#      its leaves), which settles the shallow, bracket-dense texts at C speed; the rest is a running sum.
# Exact for valid JSON. On invalid JSON the figure may be anything, which is harmless: the decoder
# refuses such a text anyway (and its own recursion guard ends in RecursionError, caught below).
_STRING: Final = re.compile(r'"[^"]*"?')
_BRACKETS_ONLY: Final = bytes.maketrans(b"[{]}", b"(())")
_NOT_A_BRACKET: Final = bytes(b for b in range(256) if b not in b"[]{}")
_LEAF: Final = b"()"
_LEAF_PASSES: Final = 4
_STEP: Final = tuple(1 if b == 0x28 else -1 if b == 0x29 else 0 for b in range(256))


# Decoding builds one container object per "[" or "{", and CPython's cyclic GC runs a pass every 700 new
# containers, over all the young ones (and, as they are promoted, over the older generations): for 1 MB of
# small arrays (400,000 lists) that was two thirds of a 120 ms decode. Decoded JSON holds no reference
# cycle, so the passes can find nothing: a text with many containers is decoded with the automatic
# collections paused, then one pass over the young generations moves what was built to the oldest one.
# Without that pass, the young generations kept the new objects until the next collection of
# generation 1, which then met several such payloads at once (a payload a connection keeps alive, its
# last event's, lasts that long): 240 ms for six of them.
GC_PAUSE_CONTAINERS: Final = 5_000


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic GC's automatic collections for a block that builds many objects in no cycle.

    On exit, one collection of the young generations (``gc.collect(1)``, linear in what they hold)
    moves the new objects to the oldest generation. A collector disabled by the application stays
    disabled and is not run.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect(1)


def _reject_constant(name: str) -> Any:
    raise LocalProtocolError(f"invalid JSON: {name} is not a JSON value")


_decoder: Final = json.JSONDecoder(parse_constant=_reject_constant)


def _too_deep(text: str, max_depth: int) -> bool:
    """Whether arrays/objects nest deeper than ``max_depth`` in ``text`` (brackets in strings ignored).

    Linear time. Exact for valid JSON; on invalid JSON either answer may come out (the decoder refuses
    the text anyway).
    """
    if "\\" in text:
        text = text.replace("\\\\", "").replace('\\"', "")
    outside = _STRING.sub("", text).encode("utf-8", "surrogatepass")
    skeleton = outside.translate(_BRACKETS_ONLY, _NOT_A_BRACKET)
    if b"(" * (max_depth + 1) in skeleton:
        return True
    depth = 0
    while skeleton and depth < _LEAF_PASSES:
        reduced = skeleton.replace(_LEAF, b"")
        if len(reduced) == len(skeleton):
            break  # no leaf: not balanced, so not valid JSON
        skeleton = reduced
        depth += 1
    if skeleton:
        depth += max(accumulate(map(_STEP.__getitem__, skeleton)))
    return depth > max_depth


def loads(text: str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse JSON text as JavaScript's ``JSON.parse`` does, with a nesting limit.

    Args:
        text: The JSON text.
        max_depth: How many arrays/objects may nest (``[]`` is depth 1).

    Returns:
        The decoded value (dict, list, str, int, float, bool or None).

    Raises:
        LocalProtocolError: invalid JSON (including the non-JSON literals NaN and Infinity, trailing data,
            numbers Python refuses to convert) or nesting deeper than ``max_depth``.
    """
    # Each level needs an opening bracket: a text with few of them cannot be too deep.
    containers = text.count("[") + text.count("{")
    if containers > max_depth and _too_deep(text, max_depth):
        raise LocalProtocolError(f"invalid JSON: nested deeper than {max_depth} levels")
    try:
        if containers > GC_PAUSE_CONTAINERS:
            with cyclic_gc_paused():
                return _decoder.decode(text)
        return _decoder.decode(text)
    except LocalProtocolError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise LocalProtocolError(f"invalid JSON: {exc}") from None
