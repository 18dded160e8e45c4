"""BaoLife: the server of an online, real-time life simulation game.

See DESIGN.md and PROTOCOL.md in the repository for the shape of the server
and its wire protocol. The game core (``baolife.tick``, ``baolife.model``,
``baolife.content``) does no I/O (but reading the content files at start;
``baolife.tick.loop`` is its clock); ``baolife.net``, ``baolife.db`` and
``baolife.ai`` are adapters around it, wired together by ``baolife.app``.
The layers and these rules are contracts in ``.importlinter``.
"""

__version__ = "0.1.0"
