"""chariot-migrate: strangler-fig migration toolkit for Lambda APIs.

The toolkit core (routes, rollout, proxy, shadow, dual_write, lambda_adapters, cli) is
generic; everything Chariot-specific lives in legacy/, model/ and services/.
"""

__version__ = "0.1.0"
