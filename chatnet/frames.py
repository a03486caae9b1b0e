"""
Every frame of the contract (PROTOCOL.md, revision 2), one small frozen
class each, with its encoding and decoding for both directions.

* **Requests** (client to server): :class:`Login` ... :class:`Decline`, and
  :class:`UnknownRequest` for a ``type`` the server does not know.  Their
  fields hold the values *as sent* (typed ``object``): the session validates
  them, because each bad value has its own error code (``invalid-room``,
  ``invalid-text`` ...).  A field that was not sent is ``None``; unknown fields
  are dropped.
* **Replies**: :class:`Ok` (the reply of ``ping``, ``exit``, ``whisper``,
  ``received``, ``accept`` and ``decline``), one ``...Ok`` class per request
  whose reply has result fields (``Login.REPLY`` names it), and
  :class:`ErrorReply`.
* **Events**: :class:`Message` ... :class:`FileReceived`; no ``id``.
* :class:`DataFrame` (either direction) and :class:`BadFrame` (a payload that
  is none of these; decoding never raises).

``frame.wire()`` is the frame ready to write (length prefix included),
``frame.payload()`` the payload alone.  No encoder returns a frame over the
65,541-byte limit: it raises :class:`FrameTooLarge` instead.  The hot frames
(``message`` events, plain ``ok`` and the ``broadcast`` reply) are written
from byte templates, not through a dict.

The server reads with :func:`decode_from_client`, the client with
:func:`decode_from_server`; an ``ok`` decodes to :class:`Ok` with its result
fields in ``Ok.result``, which :func:`read_ok` turns into the reply class of
the request it answers.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Final, TypeAlias, TypeVar

from chatnet import codec
from chatnet.codec import Malformed

Id: TypeAlias = int | str | None

MAX_DATA: Final = codec.MAX_DATA
MAX_PAYLOAD: Final = codec.MAX_PAYLOAD
MAX_ID: Final = codec.MAX_ID
_LENGTH = codec.LENGTH
_DATA_HEADER = codec.HEADER
_encoder = codec.encoder
_encode_string = codec.encode_string
data_header = codec.data_header


class FrameTooLarge(ValueError):
    """A frame would pass the 65,541-byte limit; it is never written."""


def _too_large(kind: str, size: int) -> FrameTooLarge:
    return FrameTooLarge(f"a {kind} frame of {size} bytes passes the limit of {MAX_PAYLOAD}")


class _Invalid(Malformed):
    """A control frame with a field missing or of the wrong type."""


# -- field checks (decoding on the client) ----------------------------------


def _int(value: Any) -> int:
    if type(value) is not int:
        raise _Invalid("not an integer")
    return value


def _str(value: Any) -> str:
    if type(value) is not str:
        raise _Invalid("not a string")
    return value


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _Invalid("not true or false")
    return value


def _float(value: Any) -> float:
    if type(value) is not float and type(value) is not int:
        raise _Invalid("not a number")
    return float(value)


def _any(value: Any) -> Any:
    return value


def _id(value: Any) -> Id:
    if value is None or (type(value) is int and len(str(value)) <= MAX_ID) or (
        type(value) is str and len(value) <= MAX_ID
    ):
        return value
    raise _Invalid("not an id")


def _checker(hint: Any) -> Callable[[Any], Any]:
    """The check for a field of type ``hint``."""
    simple: dict[Any, Callable[[Any], Any]] = {
        int: _int, str: _str, bool: _bool, float: _float, object: _any, Any: _any, Id: _id,
    }
    if hint in simple:
        return simple[hint]
    if hint == Limits:
        return _limits
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if args and type(None) in args:  # X | None
        (inner,) = [a for a in args if a is not type(None)]
        check = _checker(inner)
        return lambda v: None if v is None else check(v)
    if origin is tuple or origin is collections.abc.Sequence:
        item = _room_info if args[0] is RoomInfo else _checker(args[0])

        def sequence(value: Any) -> tuple[Any, ...]:
            if type(value) is not list:
                raise _Invalid("not a list")
            return tuple(item(v) for v in value)

        return sequence
    if origin is collections.abc.Mapping:
        value_check = _checker(args[1])

        def mapping(value: Any) -> dict[str, Any]:
            if type(value) is not dict:
                raise _Invalid("not an object")
            return {k: value_check(v) for k, v in value.items()}

        return mapping
    raise TypeError(f"no check for {hint!r}")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """One room of a ``rooms`` reply: ``members`` are usernames, not a count."""

    name: str
    members: Sequence[str]
    capacity: int


def _room_info(value: Any) -> RoomInfo:
    if type(value) is not dict:
        raise _Invalid("a room is not an object")
    members = value.get("members")
    if type(members) is not list or not all(type(m) is str for m in members):
        raise _Invalid("a room's members are not a list of names")
    return RoomInfo(_str(value.get("name")), tuple(members), _int(value.get("capacity")))


#: The ``limits`` of a ``login`` reply: the contract's numbers, and whatever
#: else a server adds (a cluster node's ``"upload_per_node"``, or anything
#: another server adds, of any type).
Limits: TypeAlias = Mapping[str, object]
#: The limits of the contract (PROTOCOL.md section 2): integers.
CONTRACT_LIMITS: Final = frozenset({
    "username", "room", "room_capacity", "text", "file_size", "upload_slots", "upload_queue",
})


def _limits(value: Any) -> dict[str, object]:
    """
    The contract's limits must be integers; others a server adds are kept as
    they are (a client reads what it knows and is not refused by the rest).
    """
    if type(value) is not dict:
        raise _Invalid("not an object")
    return {k: _int(v) if k in CONTRACT_LIMITS else v for k, v in value.items()}


# -- the base classes -------------------------------------------------------


class Control:
    """A control frame: a JSON object with a string ``type``."""

    __slots__ = ()
    #: The ``type`` on the wire.
    TYPE: ClassVar[str]
    #: (attribute, wire key) per field, ``id`` first.
    _KEYS: ClassVar[tuple[tuple[str, str], ...]]
    #: attribute -> check for decoding (see :func:`_checker`).
    _CHECKS: ClassVar[dict[str, Callable[[Any], Any]]]
    #: Fields that may be missing (they have a default).
    _OPTIONAL: ClassVar[frozenset[str]]

    def to_json(self) -> dict[str, Any]:
        """The JSON object; fields that are ``None`` are left out."""
        obj: dict[str, Any] = {"type": self.TYPE}
        for attr, key in self._KEYS:
            value = getattr(self, attr)
            if value is not None:
                obj[key] = value
        return obj

    def payload(self) -> bytes:
        """:raises FrameTooLarge: when it would pass the limit."""
        data = _encoder.encode(self.to_json()).encode("utf-8")
        if len(data) > MAX_PAYLOAD:
            raise _too_large(self.TYPE, len(data))
        return data

    def wire(self) -> bytes:
        """The frame with its length prefix.  :raises FrameTooLarge:"""
        data = self.payload()
        return _LENGTH.pack(len(data)) + data


class Request(Control):
    """A client's request; ``REPLY`` is the class of its ``ok`` reply."""

    __slots__ = ()
    REPLY: ClassVar[type[Reply]]
    id: Id


class Reply(Control):
    """An answer to one request (``ok`` or ``error``)."""

    __slots__ = ()
    id: Id


class Event(Control):
    """A server frame that answers no request."""

    __slots__ = ()


_C = TypeVar("_C", bound=type[Control])

_FROM_CLIENT: dict[str, type[Request]] = {}
_FROM_SERVER: dict[str, type[Control]] = {}


def _kind(name: str, table: dict[str, Any] | None, **renames: str) -> Callable[[_C], _C]:
    """Give a frame class its wire ``type`` and keys; list it for decoding."""

    def register(cls: _C) -> _C:
        cls.TYPE = name
        cls._KEYS = tuple((f.name, renames.get(f.name, f.name)) for f in fields(cls))  # type: ignore[arg-type]
        hints = typing.get_type_hints(cls)
        cls._CHECKS = {f.name: _checker(hints[f.name]) for f in fields(cls)}  # type: ignore[arg-type]
        cls._OPTIONAL = frozenset(
            f.name for f in fields(cls)  # type: ignore[arg-type]
            if f.default is not MISSING or f.default_factory is not MISSING
        )
        if table is not None:
            table[name] = cls
        return cls

    return register




# -- requests ---------------------------------------------------------------


@_kind("login", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Login(Request):
    id: Id = None
    username: object = None
    password: object = None
    #: ``True``: ask before each file (``file-offer``).
    offers: object = None
    #: ``True`` (a chatnet extension, docs/protocol.rst): tell of files on
    #: their way here (``file-pending``).
    notices: object = None


@_kind("ping", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Ping(Request):
    id: Id = None


@_kind("exit", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Exit(Request):
    id: Id = None


@_kind("join", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Join(Request):
    id: Id = None
    room: object = None


@_kind("leave", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Leave(Request):
    id: Id = None


@_kind("broadcast", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Broadcast(Request):
    id: Id = None
    text: object = None


@_kind("whisper", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Whisper(Request):
    id: Id = None
    to: object = None
    text: object = None


@_kind("rooms", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Rooms(Request):
    id: Id = None
    #: Start after this room name (paging).
    after: object = None
    limit: object = None


@_kind("who", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Who(Request):
    id: Id = None
    #: ``None``: the current room.
    room: object = None


@_kind("users", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Users(Request):
    id: Id = None
    after: object = None
    limit: object = None


@_kind("sendfile", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Sendfile(Request):
    id: Id = None
    to: object = None
    name: object = None
    size: object = None


@_kind("cancel", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Cancel(Request):
    id: Id = None
    transfer: object = None


@_kind("received", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Received(Request):
    """A receipt: the addressee's own hash of what it saved."""

    id: Id = None
    transfer: object = None
    sha256: object = None


@_kind("accept", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Accept(Request):
    id: Id = None
    transfer: object = None


@_kind("decline", _FROM_CLIENT)
@dataclass(frozen=True, slots=True)
class Decline(Request):
    id: Id = None
    transfer: object = None


@dataclass(frozen=True, slots=True)
class UnknownRequest(Control):
    """A request of a ``type`` this server does not know: ``unknown-type``."""

    id: Id
    type: str

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"type": self.type}
        if self.id is not None:
            obj["id"] = self.id
        return obj


UnknownRequest.TYPE = "?"
UnknownRequest._KEYS = (("id", "id"),)


# -- replies ----------------------------------------------------------------


@_kind("ok", None)
@dataclass(frozen=True, slots=True)
class Ok(Reply):
    """
    A plain ``ok``.  Decoded on the client, ``result`` holds any result
    fields; :func:`read_ok` reads them as the reply of a given request.
    """

    id: Id
    result: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"type": "ok"}
        if self.id is not None:
            obj["id"] = self.id
        obj.update(self.result)
        return obj

    def wire(self) -> bytes:
        if self.result:
            return Control.wire(self)
        return Ok.encode(self.id)

    @staticmethod
    def encode(ident: Id) -> bytes:
        """``Ok(ident).wire()`` without building the object (a byte template)."""
        if type(ident) is int:
            payload = b'{"type":"ok","id":%d}' % ident
            return _LENGTH.pack(len(payload)) + payload
        return Control.wire(Ok(ident))


@_kind("ok", None)
@dataclass(frozen=True, slots=True)
class LoginOk(Reply):
    id: Id
    username: str
    #: ``chatnet/<version>``.
    server: str
    #: ``username``, ``room``, ``room_capacity``, ``text``, ``file_size``,
    #: ``upload_slots``, ``upload_queue`` (integers), and a cluster node's
    #: ``upload_per_node``.
    limits: Limits


@_kind("ok", None)
@dataclass(frozen=True, slots=True)
class JoinOk(Reply):
    id: Id
    room: str
    members: Sequence[str]


@_kind("ok", None)
@dataclass(frozen=True, slots=True)
class LeaveOk(Reply):
    id: Id
    room: str


@_kind("ok", None)
@dataclass(frozen=True, slots=True)
class BroadcastOk(Reply):
    id: Id
    #: How many other members it was sent to.
    delivered: int

    def wire(self) -> bytes:
        return BroadcastOk.encode(self.id, self.delivered)

    @staticmethod
    def encode(ident: Id, delivered: int) -> bytes:
        """
        ``BroadcastOk(ident, delivered).wire()`` without building the object:
        a byte template, once per message sent.
        """
        if type(ident) is int:
            payload = b'{"type":"ok","id":%d,"delivered":%d}' % (ident, delivered)
            return _LENGTH.pack(len(payload)) + payload
        return Control.wire(BroadcastOk(ident, delivered))


@_kind("ok", None)
@dataclass(frozen=True, slots=True)
class RoomsOk(Reply):
    id: Id
    rooms: Sequence[RoomInfo]
    #: Whether a later page exists.
    more: bool = False

    def to_json(self) -> dict[str, Any]:
        obj = Control.to_json(self)
        obj["rooms"] = [{"name": r.name, "members": r.members, "capacity": r.capacity} for r in self.rooms]
        return obj


@_kind("ok", None)
@dataclass(frozen=True, slots=True)
class WhoOk(Reply):
    id: Id
    room: str
    members: Sequence[str]


@_kind("ok", None)
@dataclass(frozen=True, slots=True)
class UsersOk(Reply):
    id: Id
    users: Sequence[str]
    more: bool = False


@_kind("ok", None)
@dataclass(frozen=True, slots=True)
class SendfileOk(Reply):
    id: Id
    transfer: int
    #: Accepted uploads waiting ahead of it.
    position: int


@_kind("ok", None)
@dataclass(frozen=True, slots=True)
class CancelOk(Reply):
    """``transfer`` is chatnet's addition; the contract lists no field."""

    id: Id
    transfer: int | None = None


@_kind("error", _FROM_SERVER)
@dataclass(frozen=True, slots=True)
class ErrorReply(Reply):
    """``code`` is an :class:`~chatnet.errors.ErrorCode` value."""

    id: Id
    code: str
    message: str
    #: Seconds (``rate-limited``, ``unavailable``).
    retry_after: float | None = None


_REPLIES: list[tuple[type[Request], type[Reply]]] = [
    (Login, LoginOk), (Ping, Ok), (Exit, Ok), (Join, JoinOk), (Leave, LeaveOk),
    (Broadcast, BroadcastOk), (Whisper, Ok), (Rooms, RoomsOk), (Who, WhoOk),
    (Users, UsersOk), (Sendfile, SendfileOk), (Cancel, CancelOk), (Received, Ok),
    (Accept, Ok), (Decline, Ok),
]
for _request, _reply in _REPLIES:
    _request.REPLY = _reply


# -- events -----------------------------------------------------------------


@_kind("message", _FROM_SERVER, sender="from")
@dataclass(frozen=True, slots=True)
class Message(Event):
    room: str
    sender: str
    text: str
    #: Server time, Unix seconds.
    ts: float

    def wire(self) -> bytes:
        return message_wire(self.room, self.sender, self.text, self.ts)


def message_wire(
    room: str, sender: str, text: str, ts: float, _limit: int = MAX_PAYLOAD
) -> bytes:
    """
    ``Message(room, sender, text, ts).wire()`` without building the object:
    the hottest frame there is.

    Room and user names are ASCII letters and digits (validated), so only
    ``text`` needs JSON string escaping; writing the object directly is
    several times faster than encoding a dict and produces the same JSON.

    :raises FrameTooLarge:
    """
    payload = (
        f'{{"type":"message","room":"{room}","from":"{sender}",'
        f'"text":{_encode_string(text)},"ts":{ts!r}}}'
    ).encode()
    size = len(payload)
    if size > _limit:
        raise _too_large("message", size)
    return _LENGTH.pack(size) + payload


@_kind("whisper", _FROM_SERVER, sender="from")
@dataclass(frozen=True, slots=True)
class WhisperEvent(Event):
    sender: str
    text: str
    ts: float


@_kind("presence", _FROM_SERVER)
@dataclass(frozen=True, slots=True)
class Presence(Event):
    room: str
    user: str
    #: ``join``, ``leave`` or ``disconnect``.
    event: str


@_kind("shutdown", _FROM_SERVER)
@dataclass(frozen=True, slots=True)
class Shutdown(Event):
    message: str


@_kind("upload-start", _FROM_SERVER)
@dataclass(frozen=True, slots=True)
class UploadStart(Event):
    transfer: int
    waited: float


@_kind("upload-done", _FROM_SERVER)
@dataclass(frozen=True, slots=True)
class UploadDone(Event):
    transfer: int
    waited: float
    seconds: float


@_kind("file-start", _FROM_SERVER, sender="from")
@dataclass(frozen=True, slots=True)
class FileStart(Event):
    transfer: int
    sender: str
    name: str
    size: int
    #: The sender's name for the file, when the server renamed it.
    original: str | None = None


@_kind("file-end", _FROM_SERVER)
@dataclass(frozen=True, slots=True)
class FileEnd(Event):
    transfer: int
    sha256: str


@_kind("file-delivered", _FROM_SERVER)
@dataclass(frozen=True, slots=True)
class FileDelivered(Event):
    transfer: int
    to: str


@_kind("file-failed", _FROM_SERVER)
@dataclass(frozen=True, slots=True)
class FileFailed(Event):
    """``reason`` is a :class:`~chatnet.errors.FailReason` value."""

    transfer: int
    reason: str


@_kind("file-aborted", _FROM_SERVER)
@dataclass(frozen=True, slots=True)
class FileAborted(Event):
    transfer: int
    reason: str


@_kind("file-offer", _FROM_SERVER, sender="from")
@dataclass(frozen=True, slots=True)
class FileOffer(Event):
    """Asks an addressee that logged in with ``offers`` to accept or decline."""

    transfer: int
    sender: str
    name: str
    size: int
    original: str | None = None


@_kind("file-received", _FROM_SERVER)
@dataclass(frozen=True, slots=True)
class FileReceived(Event):
    """The addressee's receipt: ``verified`` when its hash matches."""

    transfer: int
    to: str
    verified: bool


@_kind("file-pending", _FROM_SERVER, sender="from")
@dataclass(frozen=True, slots=True)
class FilePending(Event):
    """
    A chatnet extension, sent only to an addressee that logged in with
    ``"notices": true``: a file on its way to it, not yet offered or
    started.  ``state``: ``queued`` (``position`` uploads ahead),
    ``uploading`` or ``waiting`` (uploaded; earlier files go first).
    """

    transfer: int
    sender: str
    name: str
    size: int
    state: str
    position: int | None = None


# -- data and junk ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataFrame:
    """``data`` (1 to 65,536 bytes) of transfer ``transfer``."""

    transfer: int
    data: bytes | memoryview

    def payload(self) -> bytes:
        return _DATA_HEADER.pack(0, self.transfer) + self.data

    def wire(self) -> bytes:
        """:raises FrameTooLarge: more than 64 KiB of data."""
        size = len(self.data)
        if size > MAX_DATA:
            raise _too_large("data", size + codec.DATA_HEADER)
        return _LENGTH.pack(size + codec.DATA_HEADER) + _DATA_HEADER.pack(0, self.transfer) + self.data


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A payload that is no frame; ``message`` says why."""

    message: str


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """
    A server event of a ``type`` this version does not know, as a client
    reads it: a newer server may say more than this client understands, and
    it is no error (a client shows or ignores it).
    """

    type: str
    fields: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **self.fields}


def _data(payload: bytes) -> DataFrame | BadFrame:
    try:
        return DataFrame(*codec.parse_data(payload))
    except Malformed as e:
        return BadFrame(str(e))


FromClient: TypeAlias = Request | UnknownRequest | DataFrame | BadFrame
FromServer: TypeAlias = Reply | Event | UnknownEvent | DataFrame | BadFrame


# -- decoding ---------------------------------------------------------------


def decode_from_client(payload: bytes) -> FromClient:
    """A payload a client sent, as the server reads it.  Never raises."""
    if payload[:1] == b"{":
        try:
            obj, kind, ident = codec.parse_control(payload)
        except Malformed as e:
            return BadFrame(str(e))
        read = _READ_REQUEST.get(kind)
        if read is None:
            return UnknownRequest(ident, kind)
        return read(obj, ident)
    if payload[:1] == b"\x00":
        return _data(payload)
    return BadFrame(codec.not_a_frame(payload))


def decode_from_server(payload: bytes) -> FromServer:
    """
    A payload the server sent, as a client reads it.  Never raises: a frame
    with a field missing or of the wrong type is a :class:`BadFrame`, one of
    a ``type`` this version does not know an :class:`UnknownEvent` (unknown
    fields of known frames are ignored, as the server ignores them in
    requests).  An ``ok`` is an :class:`Ok` (see :func:`read_ok`).
    """
    if payload[:1] == b"{":
        try:
            obj, kind, ident = codec.parse_control(payload)
            if kind == "ok":
                result = {k: v for k, v in obj.items() if k != "type" and k != "id"}
                return Ok(ident, result)
            cls = _FROM_SERVER.get(kind)
            if cls is None:
                return UnknownEvent(kind, {k: v for k, v in obj.items() if k != "type"})
            return typing.cast(Reply | Event, _read(cls, obj))
        except Malformed as e:
            return BadFrame(str(e))
    if payload[:1] == b"\x00":
        return _data(payload)
    return BadFrame(codec.not_a_frame(payload))


def read_ok(ok: Ok, request: Request | type[Request]) -> Reply | BadFrame:
    """``ok`` as the reply of ``request`` (e.g. a :class:`JoinOk` for a ``join``)."""
    cls = request.REPLY
    if cls is Ok:
        return ok
    try:
        return typing.cast(Reply, _read(cls, {**ok.result, "id": ok.id}))
    except _Invalid as e:
        return BadFrame(f"{cls.TYPE} reply to {request.TYPE}: {e}")


def _read(cls: type[Control], obj: Mapping[str, Any]) -> Control:
    """Build ``cls`` from ``obj``, checking each field.  :raises _Invalid:"""
    values: dict[str, Any] = {}
    optional = cls._OPTIONAL
    for attr, key in cls._KEYS:
        value = obj.get(key)
        if value is None and attr in optional:
            continue
        try:
            values[attr] = cls._CHECKS[attr](value)
        except _Invalid as e:
            raise _Invalid(f"{cls.TYPE}: field {key!r}: {e}") from None
    return cls(**values)


def _request_reader(cls: type[Request]) -> Callable[[dict[str, Any], Id], Request]:
    """
    A fast constructor: requests take their fields unchecked, written
    straight into their slots.  A frozen dataclass's own ``__init__`` goes
    through ``object.__setattr__`` per field, which costs a ``broadcast``
    about 0.15 us more; the object is just as frozen afterwards.
    """
    new = object.__new__
    set_id = cls.__dict__["id"].__set__
    fields_ = tuple(
        (cls.__dict__[attr].__set__, key) for attr, key in cls._KEYS if attr != "id"
    )

    if len(fields_) == 1:  # broadcast, join ...: one function call the fewer
        ((set_one, one),) = fields_

        def read_one(obj: dict[str, Any], ident: Id) -> Request:
            frame = new(cls)
            set_id(frame, ident)
            set_one(frame, obj.get(one))
            return frame

        return read_one

    def read(obj: dict[str, Any], ident: Id) -> Request:
        frame = new(cls)
        set_id(frame, ident)
        for set_field, key in fields_:
            set_field(frame, obj.get(key))
        return frame

    return read


_READ_REQUEST = {name: _request_reader(cls) for name, cls in _FROM_CLIENT.items()}

#: Every request class by its ``type``.
REQUESTS: Final[Mapping[str, type[Request]]] = types.MappingProxyType(_FROM_CLIENT)
#: Every event class by its ``type``.
EVENTS: Final[Mapping[str, type[Event]]] = types.MappingProxyType(
    {name: cls for name, cls in _FROM_SERVER.items() if issubclass(cls, Event)}
)
