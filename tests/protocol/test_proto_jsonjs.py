"""jsonjs: JSON.stringify parity (outputs known from JavaScript) and strict, depth-limited parsing."""

from __future__ import annotations

import enum
import random
from typing import Any

import pytest

from trio_rooms.errors import LocalProtocolError
from trio_rooms.protocol import jsonjs

NAN = float("nan")
INF = float("inf")


class Color(enum.IntEnum):
    RED = 1


# (Python value, what JavaScript's JSON.stringify writes for the same value)
JS_PARITY: list[tuple[Any, str]] = [
    # numbers: Number#toString
    (1.0, "1"),
    (100.0, "100"),
    (-3.0, "-3"),
    (1e21, "1e+21"),
    (1e16, "10000000000000000"),
    (1e20, "100000000000000000000"),
    (1.2345678901234568e20, "123456789012345680000"),
    (2.0**53, "9007199254740992"),
    (1e-7, "1e-7"),
    (-1.5e-7, "-1.5e-7"),
    (0.000001, "0.000001"),
    (0.00001, "0.00001"),
    (0.0001, "0.0001"),
    (-0.0, "0"),
    (0.0, "0"),
    (0.1, "0.1"),
    (0.1 + 0.2, "0.30000000000000004"),
    (123.456, "123.456"),
    (1.5, "1.5"),
    (1.5e300, "1.5e+300"),
    (1e300, "1e+300"),
    (5e-324, "5e-324"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (1.23e-18, "1.23e-18"),
    (NAN, "null"),
    (INF, "null"),
    (-INF, "null"),
    (0, "0"),
    (-42, "-42"),
    (Color.RED, "1"),
    # literals
    (True, "true"),
    (False, "false"),
    (None, "null"),
    # strings: control characters, quotes, non-ASCII, surrogates
    ("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"'),
    ("\x00", '"\\u0000"'),
    ("\x1f", '"\\u001f"'),
    ("\x1e", '"\\u001e"'),
    ("\x0b", '"\\u000b"'),
    ("\x7f", '"\x7f"'),
    ('"\\', '"\\"\\\\"'),
    ("/", '"/"'),
    ("é€😀", '"é€😀"'),
    ("\u2028\u2029", '"\u2028\u2029"'),
    ("\ud800", '"\\ud800"'),
    ("\udfff", '"\\udfff"'),
    ("x\ud83dy", '"x\\ud83dy"'),
    ("a\ud83d\ude00b", '"a😀b"'),  # a surrogate pair is one character to JavaScript
    ("\ude00\ud83d", '"\\ude00\\ud83d"'),  # reversed: two lone surrogates
    # containers
    ([], "[]"),
    ({}, "{}"),
    ((1, 2), "[1,2]"),
    ([1, [2, [3, []]]], "[1,[2,[3,[]]]]"),
    ({"b": 1, "a": [1, {"c": None}]}, '{"b":1,"a":[1,{"c":null}]}'),
    (["chat", {"user": "ann", "text": "hello", "n": 3}], '["chat",{"user":"ann","text":"hello","n":3}]'),
    ([1.0, "1.0", 2.5, "v1.2"], '[1,"1.0",2.5,"v1.2"]'),
    (["v1.2", 3, "3e5"], '["v1.2",3,"3e5"]'),
    ({"x": [NAN, 1e21, -0.0]}, '{"x":[null,1e+21,0]}'),
    ({"\ud800": "\x01é"}, '{"\\ud800":"\\u0001é"}'),
    # keys
    ({1: "a"}, '{"1":"a"}'),
    ({1.5: 1}, '{"1.5":1}'),
    ({2.0: 1}, '{"2":1}'),
    ({1e21: 1}, '{"1e+21":1}'),
    ({1e-7: 1}, '{"1e-7":1}'),
    ({NAN: 1}, '{"NaN":1}'),
    ({INF: 1, -INF: 2}, '{"Infinity":1,"-Infinity":2}'),
    ({True: 1}, '{"true":1}'),
    ({False: 1}, '{"false":1}'),
    ({None: 1}, '{"null":1}'),
]


@pytest.mark.parametrize(("value", "expected"), JS_PARITY, ids=[repr(v[1]) for v in JS_PARITY])
def test_dumps_matches_json_stringify(value: Any, expected: str) -> None:
    assert jsonjs.dumps(value) == expected


def test_dumps_keeps_ints_exact_beyond_2_53() -> None:
    # Deviation by design: JavaScript would round; we write the exact integer.
    assert jsonjs.dumps([2**64]) == "[18446744073709551616]"


@pytest.mark.parametrize("value", [{1, 2}, b"x", object(), {(1, 2): 1}, [bytearray(b"x")], {"a": {"b": {1}}}])
def test_dumps_rejects_other_types(value: Any) -> None:
    with pytest.raises(TypeError):
        jsonjs.dumps(value)


def test_dumps_rejects_circular_values() -> None:
    value: list[Any] = [1]
    value.append(value)
    with pytest.raises(ValueError, match="Circular"):
        jsonjs.dumps(value)
    # the encoder keeps no state across calls
    assert jsonjs.dumps([1, [2]]) == "[1,[2]]"


def test_dumps_deep_but_finite_value() -> None:
    value: list[Any] = []
    for _ in range(50):
        value = [value]
    assert jsonjs.dumps(value) == "[" * 51 + "]" * 51


def test_js_number_rules_on_many_floats() -> None:
    rng = random.Random(20240501)
    for _ in range(5000):
        exponent = rng.randint(-30, 30)
        value = rng.choice([round(rng.random(), rng.randint(0, 17)), float(rng.randint(0, 10**6))])
        value = value * 10.0**exponent * rng.choice([1, -1])
        text = jsonjs.dumps(value)
        assert float(text) == value
        magnitude = abs(value)
        if magnitude == 0:
            assert text == "0"
        elif magnitude >= 1e21 or magnitude < 1e-6:
            assert "e" in text and ".e" not in text and "e0" not in text and "e-0" not in text
        else:
            assert "e" not in text and not text.endswith(".0")
            if value.is_integer() and magnitude <= 2**53:
                assert text == str(int(value))


# ---------------------------------------------------------------------------------------------------------
# loads
# ---------------------------------------------------------------------------------------------------------


def _nest(depth: int) -> Any:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('["hello",1]', ["hello", 1]),
        (' {"a" : [1, 2.5, true, false, null]} ', {"a": [1, 2.5, True, False, None]}),
        ('"\\ud800"', "\ud800"),
        ('"\\ud83d\\ude00"', "😀"),
        ("1e400", INF),  # valid JSON: JavaScript also reads Infinity
        ("-0", 0),
        ('{"a":1,"a":2}', {"a": 2}),  # duplicate keys: last wins, as in JavaScript
        ('["' + "[" * 40 + '"]', ["[" * 40]),
        ('["\\"' + "{[" * 40 + '"]', ['"' + "{[" * 40]),
        ('["\\\\",' + "[" * 31 + "]" * 31 + "]", ["\\", _nest(31)]),
    ],
)
def test_loads_valid(text: str, value: Any) -> None:
    assert jsonjs.loads(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "[",
        "]",
        "NaN",
        "Infinity",
        "-Infinity",
        "[NaN]",
        '{"a":Infinity}',
        '{"a":1}x',
        "[1]]",
        "'a'",
        "[1,]",
        '{"a":1,}',
        '"\x01"',
        "undefined",
        "1" * 5000,  # Python refuses to convert such an int: still a protocol error, not ValueError
        "[" * 100_000,
        "{" * 100_000,
        '[{"a":' * 50_000,
        "[" * 33 + "]" * 33,
        '"\\x41"',
        "\ufeff[]",
    ],
    ids=lambda t: repr(t[:20]),
)
def test_loads_invalid_raises_local_protocol_error(text: str) -> None:
    with pytest.raises(LocalProtocolError):
        jsonjs.loads(text)


def test_loads_depth_limit_is_exact() -> None:
    assert jsonjs.loads("[" * 32 + "]" * 32) is not None
    assert jsonjs.loads("[" * 3 + "]" * 3, max_depth=3) == [[[]]]
    with pytest.raises(LocalProtocolError, match="deeper"):
        jsonjs.loads("[" * 4 + "]" * 4, max_depth=3)
    with pytest.raises(LocalProtocolError, match="deeper"):
        jsonjs.loads('{"a":{"b":[{}]}}', max_depth=3)
    assert jsonjs.loads("[[],[],[],[],[]]", max_depth=2) == [[], [], [], [], []]


def test_round_trip_through_loads() -> None:
    values: list[Any] = [["chat", {"user": "ann", "n": [1, 2.5, None]}], {"é": "\ud800"}, "😀", []]
    for value in values:
        assert jsonjs.loads(jsonjs.dumps(value)) == value
