"""The one way user-supplied text reaches rich: escaped, so ``[ops-123]`` is printed, not eaten.

rich reads ``[...]`` as markup in ``console.print`` strings, table cells and titles: a reason
``[ops-123] canary`` printed as `` canary`` and every query predicate of ``routes show``
vanished. Every string that comes from a user, a config file, a store or an exception goes
through :func:`esc` before rich sees it (our own ``[red]…[/red]`` around it stays markup).
"""

from __future__ import annotations

from rich.markup import escape


def esc(value: object) -> str:
    """``value`` as text that rich prints literally (``[`` escaped; ``None`` → ``-``)."""
    return "-" if value is None else escape(str(value))
