"""Events of the capabilities service.

Publishes ``job.completed`` (v1: key, capability, dns, status JP/JF, started, finished, results)
when a job's saga ends. Consumes nothing: job results reach asset-discovery/risk-assessment
through their APIs (see ``peers.py`` for why).
"""

PUBLISHES = ("job.completed",)
CONSUMES: tuple[str, ...] = ()
