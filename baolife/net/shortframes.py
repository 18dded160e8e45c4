"""Client frames read without wsproto: the short text frames most messages
are, and a walk of the frame headers that says when wsproto, which reads
everything else, is between frames.

What clients send is almost always whole, short text frames (a ``ping``, an
``act``: under 126 bytes, one frame each). :func:`short_texts` reads those;
:class:`~baolife.net.ws.WsConnection` gives wsproto the rest: from the first
frame that is not one of those (a control frame, a fragment, bad UTF-8, a
frame cut by the read) on, until wsproto is between frames again, which
:class:`FrameWalk` follows from the headers of what it was given. wsproto
keeps no state between whole frames, so either can take any frame; its
generators, buffers and named tuples cost about 11 us a message more
(``scripts/bench_read.py``; docs/BENCHMARKS.md, issue 15).
"""

from __future__ import annotations

__all__ = ["FrameWalk", "short_texts"]


def short_texts(data: bytes, limit: int) -> tuple[list[str], int]:
    """The whole, final, masked text frames of under 126 bytes (and at most
    ``limit``) at the start of ``data`` (RFC 6455 5.2, 5.3), as strings, and
    how many bytes they took. It stops at the first frame that is anything
    else or whose text is not UTF-8, which is left to wsproto."""
    texts: list[str] = []
    at = 0
    end = len(data)
    while end - at >= 6 and data[at] == 0x81:
        n = data[at + 1] ^ 0x80  # the mask bit set, the 7-bit length
        if n > 125 or n > limit or at + 6 + n > end:
            break
        key = data[at + 2 : at + 6]
        body = data[at + 6 : at + 6 + n]
        plain = int.from_bytes(body, "little") ^ int.from_bytes((key * (n // 4 + 1))[:n], "little")
        try:
            texts.append(plain.to_bytes(n, "little").decode("utf-8"))
        except UnicodeDecodeError:
            break
        at += 6 + n
    return texts, at


class FrameWalk:
    """Where wsproto is in the frames it was given: the first bytes of a
    header, the payload bytes still to come, a message in pieces. Kept only
    while wsproto is not between frames (it keeps no state there, so the
    short text frames can be read around it), from the frame headers alone:
    wsproto's own state is private."""

    __slots__ = ("head", "left", "pieces")

    def __init__(self) -> None:
        self.head = b""
        self.left = 0
        self.pieces = False

    def walk(self, data: bytes) -> bool:
        """Go through ``data``, given to wsproto after what was walked
        before; True if it ends between frames with no message in pieces."""
        at, end = 0, len(data)
        while at < end:
            if self.left:
                step = min(self.left, end - at)
                self.left -= step
                at += step
                continue
            had = len(self.head)
            head = self.head + data[at : at + 14 - had]  # a header is 2 to 14 bytes
            need = 2
            if len(head) >= 2:
                code = head[1] & 0x7F
                need += (2 if code == 126 else 8 if code == 127 else 0) + (4 if head[1] & 0x80 else 0)
            if len(head) < need:
                self.head = head  # the data ended inside this header
                return False
            at += need - had
            self.head = b""
            self.left = code if code < 126 else int.from_bytes(head[2:4] if code == 126 else head[2:10], "big")
            if head[0] & 0x0F < 8:  # a data frame; control frames may come between the pieces
                self.pieces = not head[0] & 0x80
        return not self.head and not self.left and not self.pieces
