"""Wire protocol version 1 (see PROTOCOL.md): inbound commands, outbound ops,
frame encoding.

Inbound, :func:`parse` turns one text message into one typed command, or raises
:class:`Rejected` carrying the ``error`` op to answer with. Nothing here looks
up names in a namespace: the message type selects a class from the closed
table :data:`COMMANDS`, and cattrs builds it with strict hooks (a string field
takes only a JSON string, an integer field only a JSON integer).

Outbound, every op is a frozen attrs class with a ``wire()`` dict; a frame is
encoded once with :func:`encode_frame`.

One piece: it is PROTOCOL.md in code, the command table, the ops and the
frame format that change together whenever the wire does; each class is
small and no other module defines a message.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import attrs
import cattrs
import orjson

__all__ = [
    "COMMANDS",
    "ERROR_CODES",
    "FRAME_HEAD",
    "Act",
    "Answer",
    "CloseCode",
    "Command",
    "Login",
    "Logout",
    "NewLife",
    "Ping",
    "Register",
    "Rejected",
    "Resume",
    "Say",
    "Speed",
    "Lives",
    "Story",
    "Talks",
    "encode_frame",
    "parse",
]

ERROR_CODES = frozenset(
    {
        "bad_request",
        "unknown_type",
        "unauthenticated",
        "invalid_token",
        "not_found",
        "invalid_choice",
        "not_allowed",
        "rate_limited",
        "busy",
        "internal",
        # The player is banned (``reason``, ``until``: the ban's end, unix
        # seconds, absent for a ban without end); an addition of issue 16.
        "banned",
    }
)


class CloseCode(enum.IntEnum):
    """WebSocket close codes (PROTOCOL.md, "Close codes"; RFC 6455 7.4).

    ``PROTOCOL_ERROR`` is what a peer breaking the WebSocket framing gets;
    ``LOST`` is never sent: it is what a connection that ended without a
    close frame is recorded with (RFC 6455 reserves it for that)."""

    LOGOUT = 1000  # also a client's own normal close
    SHUTDOWN = 1001
    PROTOCOL_ERROR = 1002
    LOST = 1006
    BAD_UTF8 = 1007
    POLICY = 1008  # not logged in in time; sustained rate limit abuse
    TOO_BIG = 1009
    INTERNAL = 1011
    REPLACED = 4000
    IDLE = 4001
    KICKED = 4002  # an operator ended the session (after ``bye`` kicked)


MAX_REF_CHARS = 64
NAME_CHARS = 32
SAY_CHARS = 500


class FieldError(ValueError):
    """A field of an inbound message failed its check."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


# --------------------------------------------------------------------------- commands


def _text_field(low: int, high: int, *, printable: bool = False) -> Any:
    def check(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if not low <= len(value) <= high:
            raise FieldError(attribute.name, f"must be {low}-{high} characters long, got {len(value)}")
        if not value.strip():
            raise FieldError(attribute.name, "must not be blank")
        if printable and not value.isprintable():
            raise FieldError(attribute.name, "must hold printable characters only")

    return check


# The fast-forward factors a player may choose (``speed``).
SPEEDS = (1, 2, 5)


def _speed(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value not in SPEEDS:
        raise FieldError(attribute.name, f"must be one of {', '.join(map(str, SPEEDS))}, got {value}")


def _non_negative(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 0:
        raise FieldError(attribute.name, "must not be negative")


@attrs.frozen
class Command:
    """Base of inbound commands. ``ref`` is the client's ``id``, echoed as ``ref``.

    ``needs_login``: PROTOCOL.md's rule, the one place it is written. Only
    the commands that log a connection in (``register``, ``login``,
    ``resume``) are allowed before one of them succeeds; every other type,
    ``ping`` and ``logout`` included, is answered ``unauthenticated`` then
    (the tick loop checks it as it delivers). The connection's reader
    runs the commands that do not need login (they wait on the store)."""

    type: ClassVar[str] = ""
    needs_login: ClassVar[bool] = True
    ref: Any = attrs.field(default=None, kw_only=True)


@attrs.frozen
class Register(Command):
    type: ClassVar[str] = "register"
    needs_login: ClassVar[bool] = False
    name: str = attrs.field(validator=_text_field(1, NAME_CHARS, printable=True))


@attrs.frozen
class Login(Command):
    type: ClassVar[str] = "login"
    needs_login: ClassVar[bool] = False
    token: str = attrs.field(validator=_text_field(1, 128))


@attrs.frozen
class Resume(Command):
    type: ClassVar[str] = "resume"
    needs_login: ClassVar[bool] = False
    token: str = attrs.field(validator=_text_field(1, 128))
    last_seq: int = attrs.field(validator=_non_negative)


@attrs.frozen
class Answer(Command):
    type: ClassVar[str] = "answer"
    prompt: int
    choice: str = attrs.field(validator=_text_field(1, 64))


@attrs.frozen
class Act(Command):
    type: ClassVar[str] = "act"
    action: str = attrs.field(validator=_text_field(1, 64))
    # The person an NPC-targeted action is aimed at (ignored by other actions).
    npc: int | None = None


@attrs.frozen
class Say(Command):
    type: ClassVar[str] = "say"
    npc: int
    text: str = attrs.field(validator=_text_field(1, SAY_CHARS))


@attrs.frozen
class Ping(Command):
    type: ClassVar[str] = "ping"


@attrs.frozen
class Speed(Command):
    """Fast-forward: while no prompt waits, the clock runs ``x`` times the stage's pace."""

    type: ClassVar[str] = "speed"
    x: int = attrs.field(validator=_speed)


@attrs.frozen
class NewLife(Command):
    """Start again after death; ``name``: the new life's name (as ``register.name``)."""

    type: ClassVar[str] = "new_life"
    name: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(_text_field(1, NAME_CHARS, printable=True))
    )


@attrs.frozen
class Story(Command):
    """A page of the life story ending before line ``before`` (default: the newest)."""

    type: ClassVar[str] = "story"
    before: int | None = attrs.field(default=None, validator=attrs.validators.optional(_non_negative))


@attrs.frozen
class Talks(Command):
    """The remembered conversation with one NPC."""

    type: ClassVar[str] = "talks"
    npc: int


@attrs.frozen
class Lives(Command):
    """The player's past lives, newest first."""

    type: ClassVar[str] = "lives"


@attrs.frozen
class Logout(Command):
    type: ClassVar[str] = "logout"


COMMANDS: dict[str, type[Command]] = {
    cls.type: cls
    for cls in (Register, Login, Resume, Answer, Act, Say, Ping, NewLife, Logout, Speed, Story, Talks, Lives)
}


class Rejected(Exception):  # noqa: N818 - it names what happened to the message
    """An inbound message that is refused; :attr:`op` is the error to send."""

    def __init__(self, code: str, message: str, ref: Any = None) -> None:
        super().__init__(message)
        self.op = Error(code=code, message=message, ref=ref)


def _strict(kind: type, what: str) -> Any:
    def hook(value: Any, _type: Any) -> Any:
        # bool is an int in Python but not in JSON; reject it explicitly.
        if type(value) is not kind:
            raise TypeError(f"must be {what}, got {_json_kind(value)}")
        return value

    return hook


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), "a value")


_converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
_converter.register_structure_hook(str, _strict(str, "a string"))
_converter.register_structure_hook(int, _strict(int, "an integer"))
_converter.register_structure_hook(Any, lambda value, _t: value)


def _explain(group: cattrs.ClassValidationError) -> str:
    reasons = []
    for exc in group.exceptions:
        if isinstance(exc, FieldError):
            reasons.append(str(exc))
            continue
        field = next((note.name for note in getattr(exc, "__notes__", ()) if hasattr(note, "name")), "?")
        reason = "is required" if isinstance(exc, KeyError) else str(exc)
        reasons.append(f"{field}: {reason}")
    return "; ".join(reasons)


def _check_ref(obj: dict[str, Any]) -> Any:
    ref = obj.get("id")
    if ref is None:
        return None
    if type(ref) is int or (type(ref) is str and len(ref) <= MAX_REF_CHARS):
        return ref
    raise Rejected("bad_request", f"id: must be an integer or a string of at most {MAX_REF_CHARS} characters")


def parse(message: str | bytes) -> Command:
    """Parse one inbound WebSocket message into a command.

    Raises:
        Rejected: with the ``error`` op to answer with (``bad_request`` or
            ``unknown_type``); its ``ref`` is the message's ``id`` when that
            id was readable.
    """
    if not isinstance(message, str):
        raise Rejected("bad_request", "binary frames are not accepted: send JSON in a text frame")
    try:
        obj = orjson.loads(message)
    except orjson.JSONDecodeError as exc:
        raise Rejected("bad_request", f"message is not valid JSON: {exc.msg}") from None
    if not isinstance(obj, dict):
        raise Rejected("bad_request", f"message must be a JSON object, got {_json_kind(obj)}")
    ref = _check_ref(obj)
    kind = obj.get("type")
    if type(kind) is not str:
        raise Rejected("bad_request", f"type: must be a string, got {_json_kind(kind)}", ref)
    cls = COMMANDS.get(kind)
    if cls is None:
        shown = kind if len(kind) <= 32 else kind[:32] + "..."
        raise Rejected("unknown_type", f"there is no message type {shown!r}", ref)
    fields = {key: value for key, value in obj.items() if key not in ("type", "id")}
    fields["ref"] = ref
    try:
        return _converter.structure(fields, cls)
    except cattrs.ClassValidationError as exc:
        raise Rejected("bad_request", f"{kind}: {_explain(exc)}", ref) from None
    except FieldError as exc:
        raise Rejected("bad_request", f"{kind}: {exc}", ref) from None


# --------------------------------------------------------------------------- ops


@attrs.frozen
class Op:
    """Base of outbound ops. ``wire()`` gives the JSON object; fields that are
    None (e.g. ``ref`` of a message without ``id``) are left out."""

    op: ClassVar[str] = ""
    _names: ClassVar[tuple[str, ...]] = ()

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op}
        for name in self._names:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def _op(cls: type) -> type:
    # Record field names once per class so wire() does no reflection per call.
    cls._names = tuple(a.name for a in attrs.fields(cls))  # type: ignore[attr-defined]
    return cls


@_op
@attrs.frozen
class Registered(Op):
    op: ClassVar[str] = "registered"
    player: int
    token: str
    ref: Any = None


@_op
@attrs.frozen
class Welcome(Op):
    op: ClassVar[str] = "welcome"
    player: int
    snapshot: dict[str, Any]
    ref: Any = None


@attrs.frozen
class State(Op):
    """Changed fields of the player view; ``stats`` holds only changed stats."""

    op: ClassVar[str] = "state"
    fields: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        return {"op": "state", **self.fields}


@_op
@attrs.frozen
class PromptOp(Op):
    op: ClassVar[str] = "prompt"
    id: int
    title: str
    text: str
    choices: list[dict[str, str]]
    expires_tick: int


@_op
@attrs.frozen
class PromptClosed(Op):
    op: ClassVar[str] = "prompt_closed"
    id: int
    choice: str
    by: str


@_op
@attrs.frozen
class Feed(Op):
    op: ClassVar[str] = "feed"
    text: str
    # The player's age in days when it happened.
    age_days: int | None = None


@attrs.frozen
class NpcOp(Op):
    op: ClassVar[str] = "npc"
    view: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        return {"op": "npc", **self.view}


@_op
@attrs.frozen
class NpcSay(Op):
    op: ClassVar[str] = "npc_say"
    npc: int
    text: str
    ref: Any = None


@_op
@attrs.frozen
class Died(Op):
    op: ClassVar[str] = "died"
    cause: str
    age_days: int
    # The life summary of the life that ended (see baolife.tick.lives).
    summary: dict[str, Any] | None = None


@_op
@attrs.frozen
class StoryOp(Op):
    """A page of the life story: ``lines`` ``[age_days, text]`` oldest first,
    ``first`` the number of the first (0 is the oldest line kept), ``total`` lines kept."""

    op: ClassVar[str] = "story"
    lines: list[list[Any]]
    first: int
    total: int
    ref: Any = None


@_op
@attrs.frozen
class TalksOp(Op):
    """The remembered conversation with ``npc``: ``turns`` ``{who, text}``, oldest first."""

    op: ClassVar[str] = "talks"
    npc: int
    turns: list[dict[str, str]]
    ref: Any = None


@_op
@attrs.frozen
class LivesOp(Op):
    """The player's past lives (life summaries), newest first."""

    op: ClassVar[str] = "lives"
    lives: list[dict[str, Any]]
    ref: Any = None


@_op
@attrs.frozen
class Ack(Op):
    op: ClassVar[str] = "ack"
    ref: Any = None


@_op
@attrs.frozen
class Pong(Op):
    op: ClassVar[str] = "pong"
    ref: Any = None


@_op
@attrs.frozen
class Error(Op):
    op: ClassVar[str] = "error"
    code: str = attrs.field(validator=attrs.validators.in_(ERROR_CODES))
    message: str
    ref: Any = None
    # Only with code ``banned``: why, and until when (unix seconds; None: no end).
    reason: str | None = None
    until: int | None = None


@_op
@attrs.frozen
class Outcome(Op):
    """What one action, prompt or event changed (only what changed, see PROTOCOL.md)."""

    op: ClassVar[str] = "outcome"
    source: str
    id: Any
    title: str
    changes: dict[str, Any]
    ref: Any = None


@_op
@attrs.frozen
class Warning(Op):  # noqa: A001 - the op's name on the wire
    """A stat fell below its threshold, or money went below zero."""

    op: ClassVar[str] = "warning"
    kind: str
    level: str
    text: str


@_op
@attrs.frozen
class Bye(Op):
    op: ClassVar[str] = "bye"
    reason: str
    # Text for the player (an operator's reason with ``kicked``); absent otherwise.
    message: str | None = None


@_op
@attrs.frozen
class Notice(Op):
    """An operator's announcement, shown until ``until`` (unix seconds); an
    empty ``text`` withdraws the one shown (issue 16)."""

    op: ClassVar[str] = "notice"
    text: str
    until: int


def compact(data: bytes) -> bytes:
    """An exact-size copy of ``data``. orjson returns each result in a 4 KiB
    heap block however short it is (``sys.getsizeof`` does not show it); copy
    what is kept beyond the moment, or every kept frame costs 4 KiB."""
    return bytes(memoryview(data))


def encode_frame(seq: int, tick: int, ops: list[Op]) -> bytes:
    """One server frame as UTF-8 JSON bytes, encoded once for the wire.

    The bytes are those of ``orjson.dumps({"type": "frame", "seq": seq,
    "tick": tick, "ops": [...]})``, but only the ops go through orjson and the
    head is formatted around them: no outer dict per frame, and the result
    is exact-size (no :func:`compact` copy needed), about a fifth less per
    frame (docs/BENCHMARKS.md, issue 15). ``seq`` and ``tick`` must be ints."""
    if type(seq) is not int or type(tick) is not int:
        raise TypeError(f"frame seq and tick must be ints, not {type(seq).__name__} and {type(tick).__name__}")
    if len(ops) == 1:
        # Most frames carry one op, a player's state of the second: its
        # fields are dumped as they are and the op's key written before them,
        # the bytes of dumping State.wire() without building its dict (about
        # half the cost of such a frame, docs/BENCHMARKS.md, issue 15).
        op = ops[0]
        if type(op) is State:
            fields = op.fields
            if fields and "op" not in fields:
                return _STATE_FRAME % (seq, tick, orjson.dumps(fields)[1:])
        return _FRAME % (seq, tick, orjson.dumps([op.wire()]))
    return _FRAME % (seq, tick, orjson.dumps([op.wire() for op in ops]))


# What every frame begins with, before its number and a comma (the resume
# ring in baolife.tick.delivery keeps frames without it and writes it back).
FRAME_HEAD = b'{"type":"frame","seq":'
# What orjson writes for the frame's head (compact, keys in this order), and
# for a frame of one state op up to its fields' first key.
_FRAME = FRAME_HEAD + b'%d,"tick":%d,"ops":%b}'
_STATE_FRAME = FRAME_HEAD + b'%d,"tick":%d,"ops":[{"op":"state",%b]}'
