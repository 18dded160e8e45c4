"""Inbound parsing and outbound encoding of protocol v1."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baolife import protocol as wire


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "register", "name": "Bao Nguyen"}, wire.Register(name="Bao Nguyen")),
        ({"type": "login", "token": "t" * 43, "id": 7}, wire.Login(token="t" * 43, ref=7)),  # noqa: S106
        ({"type": "resume", "token": "t", "last_seq": 5, "id": "x"}, wire.Resume(token="t", last_seq=5, ref="x")),  # noqa: S106
        ({"type": "answer", "prompt": 3, "choice": "a"}, wire.Answer(prompt=3, choice="a")),
        ({"type": "act", "action": "study", "extra": [1, 2]}, wire.Act(action="study")),
        ({"type": "say", "npc": 2, "text": "Hello?"}, wire.Say(npc=2, text="Hello?")),
        ({"type": "ping", "id": "p" * 64}, wire.Ping(ref="p" * 64)),
        ({"type": "new_life"}, wire.NewLife()),
        ({"type": "logout"}, wire.Logout()),
    ],
)
def test_every_message_type_parses_into_its_command(message: dict[str, Any], expected: wire.Command) -> None:
    assert wire.parse(orjson.dumps(message).decode()) == expected


@pytest.mark.parametrize(
    ("raw", "code", "ref", "says"),
    [
        ("not json", "bad_request", None, "not valid JSON"),
        ("[1, 2]", "bad_request", None, "JSON object"),
        ('"text"', "bad_request", None, "JSON object"),
        ('{"id": 1}', "bad_request", 1, "type"),
        ('{"type": 5, "id": 2}', "bad_request", 2, "type: must be a string"),
        ('{"type": "fly", "id": "r"}', "unknown_type", "r", "fly"),
        ('{"type": "register", "id": 3}', "bad_request", 3, "name: is required"),
        ('{"type": "register", "name": 5}', "bad_request", None, "name: must be a string, got an integer"),
        ('{"type": "register", "name": ""}', "bad_request", None, "name: must be 1-32"),
        ('{"type": "register", "name": "' + "x" * 33 + '"}', "bad_request", None, "name: must be 1-32"),
        ('{"type": "register", "name": "a\\u0007b"}', "bad_request", None, "name: must hold printable"),
        (
            '{"type": "answer", "prompt": "3", "choice": "a"}',
            "bad_request",
            None,
            "prompt: must be an integer, got a string",
        ),
        (
            '{"type": "answer", "prompt": 1.0, "choice": "a"}',
            "bad_request",
            None,
            "prompt: must be an integer, got a number",
        ),
        ('{"type": "say", "npc": true, "text": "hi"}', "bad_request", None, "npc: must be an integer, got a boolean"),
        ('{"type": "say", "npc": 1, "text": "' + "y" * 501 + '"}', "bad_request", None, "text: must be 1-500"),
        ('{"type": "say", "npc": 1, "text": "   "}', "bad_request", None, "text: must not be blank"),
        ('{"type": "resume", "token": "t", "last_seq": -1}', "bad_request", None, "last_seq: must not be negative"),
        ('{"type": "ping", "id": {"a": 1}}', "bad_request", None, "id: must be an integer or a string"),
        ('{"type": "ping", "id": "' + "i" * 65 + '"}', "bad_request", None, "id: must be an integer or a string"),
    ],
)
def test_bad_messages_are_refused_with_a_message_naming_the_field(raw: str, code: str, ref: Any, says: str) -> None:
    with pytest.raises(wire.Rejected) as info:
        wire.parse(raw)
    op = info.value.op.wire()
    assert op["code"] == code
    assert op.get("ref") == ref
    assert says in op["message"]


def test_binary_frames_are_bad_requests() -> None:
    with pytest.raises(wire.Rejected) as info:
        wire.parse(b'{"type": "ping"}')
    assert info.value.op.code == "bad_request"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["type", "id", "name", "token", "last_seq", "prompt", "choice", "action", "npc", "text"])
        | st.text(max_size=8),
        json_values,
        max_size=6,
    ),
    st.sampled_from(sorted(wire.COMMANDS) + ["bogus"]),
)
def test_any_json_object_parses_or_is_rejected_with_a_known_code(obj: dict[str, Any], kind: str) -> None:
    obj.setdefault("type", kind)
    try:
        cmd = wire.parse(orjson.dumps(obj).decode())
    except wire.Rejected as rejected:
        assert rejected.op.code in ("bad_request", "unknown_type")
        assert rejected.op.message
    else:
        assert type(cmd) is wire.COMMANDS[obj["type"]]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_arbitrary_text_never_escapes_as_anything_but_rejected(raw: str | bytes) -> None:
    try:
        wire.parse(raw)
    except wire.Rejected as rejected:
        assert rejected.op.code in wire.ERROR_CODES


def test_frames_are_encoded_once_with_ops_in_order() -> None:
    frame = wire.encode_frame(
        3,
        99,
        [
            wire.Ack(ref=1),
            wire.State({"money": 5, "stats": {"health": 9}}),
            wire.Error(code="busy", message="later"),
            wire.Pong(),
        ],
    )
    assert orjson.loads(frame) == {
        "type": "frame",
        "seq": 3,
        "tick": 99,
        "ops": [
            {"op": "ack", "ref": 1},
            {"op": "state", "money": 5, "stats": {"health": 9}},
            {"op": "error", "code": "busy", "message": "later"},
            {"op": "pong"},
        ],
    }


def test_a_frame_is_byte_for_byte_what_orjson_makes_of_the_whole_frame() -> None:
    # encode_frame formats the head around orjson's ops (issue 15): the bytes
    # must stay those of one orjson.dumps of the frame, for every kind of value.
    ops: list[wire.Op] = [
        wire.State({"money": -12, "age_days": 10**12, "stats": {"health": 0}, "note": 'é " \\ \n 中'}),
        wire.Feed(text="Bao \u2603 <b>", age_days=None),
        wire.Error(code="busy", message="later", ref={"k": [1, 2.5, None, True]}),
        wire.Pong(ref=0),
    ]
    # A frame of one state op (most frames) has its own way to the same bytes.
    alone: list[list[wire.Op]] = [[wire.State(f)] for f in ({}, {"age_days": 3}, {"op": "x", "money": 1})]
    for seq, tick in ((0, 0), (1, 99), (2**40, 2**63 - 1), (-1, 7)):
        for kept in (ops, ops[:1], ops[1:2], [], *alone):
            whole = {"type": "frame", "seq": seq, "tick": tick, "ops": [op.wire() for op in kept]}
            assert wire.encode_frame(seq, tick, kept) == orjson.dumps(whole)
    with pytest.raises(TypeError, match="ints"):
        wire.encode_frame(1, 2.0, ops)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ints"):
        wire.encode_frame(True, 2, ops)


def test_error_ops_only_carry_codes_of_the_protocol() -> None:
    with pytest.raises(ValueError, match="code"):
        wire.Error(code="oops", message="x")


def test_only_the_commands_that_log_in_are_allowed_before_login() -> None:
    # PROTOCOL.md: "Before register, login or resume succeeds, every other
    # type gets error with code unauthenticated" (ping and logout included).
    allowed = {kind for kind, cls in wire.COMMANDS.items() if not cls.needs_login}
    assert allowed == {"register", "login", "resume"}


def test_the_close_codes_are_those_of_protocol_md() -> None:
    text = (Path(__file__).parent.parent / "docs" / "PROTOCOL.md").read_text()
    table = text.split("## Close codes", 1)[1]
    documented = {int(code) for code in re.findall(r"^\| (\d{4}) \|", table, re.MULTILINE)}
    assert documented == {1000, 1001, 1007, 1008, 1009, 1011, 4000, 4001, 4002}
    # Beyond the contract's table: RFC 6455's code for a framing error, and
    # the code a connection lost without a close frame is recorded with.
    assert set(wire.CloseCode) - documented == {wire.CloseCode.PROTOCOL_ERROR, wire.CloseCode.LOST}
