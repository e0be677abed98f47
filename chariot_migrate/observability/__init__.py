"""Observability for the toolkit core: Prometheus metrics of the background machinery
(``metrics``), OpenTelemetry tracing that is off unless configured (``tracing``), and the
per-request trace id that JSON log lines carry (``logcontext``). Chariot-agnostic.

Submodules are imported explicitly (``from chariot_migrate.observability import tracing``) so
that importing one does not pull in the others.
"""
