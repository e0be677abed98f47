"""Events of the notification service: consumes ``risk.assessed`` and ``job.completed`` (alert
rules → webhook deliveries); publishes nothing."""

from .notifier import CONSUMES

PUBLISHES: tuple[str, ...] = ()
__all__ = ["CONSUMES", "PUBLISHES"]
