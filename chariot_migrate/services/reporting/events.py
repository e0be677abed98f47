"""Events of reporting: consumes ``asset.discovered``, ``risk.assessed`` and ``job.completed`` into
its read models (entity index for ``/my/count`` and exports, status statistics); publishes nothing."""

from .readmodel import CONSUMES

PUBLISHES: tuple[str, ...] = ()
__all__ = ["CONSUMES", "PUBLISHES"]
