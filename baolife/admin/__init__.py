"""The operators' console (issue 16): an admin API on the HTTP listener
under ``/admin/api/``, the console's page at ``/admin/``, and the
``baolife admin`` command that speaks to the API.

- :mod:`.tokens`: operator tokens (hashed, named, with a role) and checking them.
- :mod:`.actions`: what an operator does (kick, ban, mute, erase, announce,
  budget, drain), across every worker through the bus, each written to the
  audit log; and what each worker keeps of it (mutes, the notice).
- :mod:`.views`: the JSON the API answers (a player's page, the export, the
  day's LLM figures, the worker's panel).
- :mod:`.api`: the HTTP side: tokens, roles, rate limits, bodies, routes.
- :mod:`.cli`: ``baolife admin ...``.
"""

from __future__ import annotations
