"""What a list page or a watch line of any resource is decoded to, and the plain JSON way.

A resource's ``Codec`` turns the API server's bytes into ``Item``s: the
object's uid and resourceVersion (what ``feeds.Feed`` orders copies by) and
its value for the desired state. For Services and EndpointSlices the value is
the parsed body, read by their views later; pods are decoded straight into
their views by ``podwire``, since they are many and their bodies large.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Item:
    """One object of a list or a watch event."""

    uid: str
    version: int | None  # metadata.resourceVersion as a number; None if opaque
    value: Any  # what the resource's feed hands the desired state, or what ``read`` takes
    read: Callable[[Any], Any] | None = None

    def view(self) -> Any:
        """What the feed hands the desired state, read from ``value`` only when asked.

        A resync lists every pod again, and almost all come at the resourceVersion
        already held: the feed skips those by their version, so their views are
        never built (10 us of the operator's CPU a pod, and its garbage).
        """
        return self.value if self.read is None else self.read(self.value)


@dataclass(frozen=True, slots=True)
class Status:
    """The object of an ERROR watch event."""

    code: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    """One watch event: an object, or for ERROR the API server's ``Status``."""

    type: str
    item: Item | None
    resource_version: str  # as sent (opaque to clients): where a new watch resumes
    status: Status | None = None


Page = tuple[list[Item], str, str]  # items, the list's resourceVersion, its continue token


class Undecodable(ValueError):
    """A body in an encoding other than JSON that its reader refused: ask again for JSON."""


@dataclass(frozen=True, slots=True)
class Codec:
    """How one resource's list pages and watch lines are read."""

    page: Callable[[bytes], Page]
    event: Callable[[bytes], Event]
    page_types: str = "application/json"  # the Accept header of list pages
    peek: Callable[[bytes], str | None] | None = None  # a page's continue token, read ahead
    page_size: int = 500  # objects a list page asks for
    # A whole list read as it arrives (``podproto.ListStream``); None: pages only.
    stream: Callable[[], Stream] | None = None


class Stream(Protocol):
    """A list body read chunk by chunk: its items as they complete, its version and token."""

    resource_version: str
    token: str

    def feed(self, chunk: bytes) -> list[Item]: ...

    def finish(self) -> None: ...


def number(version: str) -> int | None:
    try:
        return int(version)
    except ValueError:
        return None


def metadata(body: object) -> Mapping[str, Any]:
    meta = body.get("metadata") if isinstance(body, Mapping) else None
    return meta if isinstance(meta, Mapping) else {}


def text(value: object) -> str:
    return value if isinstance(value, str) else ""


def item_of(body: Mapping[str, Any], read: Callable[[Mapping[str, Any]], Any]) -> Item:
    """A parsed body's uid and version, and ``read(body)`` as its value."""
    meta = metadata(body)
    return Item(text(meta.get("uid")), number(text(meta.get("resourceVersion"))), read(body))


def json_codec(read: Callable[[Mapping[str, Any]], Any] = lambda body: body) -> Codec:
    """Pages and events parsed with ``json``, each object's value ``read(body)``."""

    def page(data: bytes) -> Page:
        raw = json.loads(data)
        meta = raw.get("metadata") or {}
        return ([item_of(body, read) for body in raw.get("items") or []],
                str(meta.get("resourceVersion", "")), str(meta.get("continue") or ""))

    def event(line: bytes) -> Event:
        raw = json.loads(line)
        kind = text(raw.get("type"))
        body = raw.get("object") or {}
        if kind == "ERROR":
            code = body.get("code")
            return Event(kind, None, "", Status(code if isinstance(code, int) else 0,
                                                text(body.get("message")) or str(body)))
        return Event(kind, item_of(body, read), text(metadata(body).get("resourceVersion")))

    return Codec(page, event)


JSON = json_codec()
