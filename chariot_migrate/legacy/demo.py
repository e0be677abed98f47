"""The demo account `chariot-migrate up` creates, and the recipe for driving it with the real
`praetorian-cli` (Chariot-specific; the generic `up` command reaches it through routes.yaml)."""

from __future__ import annotations

from .resources import seed_demo

DEMO_EMAIL = "demo@example.com"


def demo_account(*, endpoint_url: str, proxy_url: str, region: str = "us-east-1") -> dict:
    key_id, secret = seed_demo(endpoint_url, DEMO_EMAIL, region)
    env = {
        "PRAETORIAN_CLI_API": f"{proxy_url}/chariot",
        "PRAETORIAN_CLI_ALLOW_HTTP_LOOPBACK": "1",
        "PRAETORIAN_CLI_API_KEY_ID": key_id,
        "PRAETORIAN_CLI_API_KEY_SECRET": secret,
        "PRAETORIAN_CLI_USERNAME": DEMO_EMAIL,
        "PRAETORIAN_CLI_DISABLE_UPDATE_CHECK": "1",
    }
    recipe = (
        "Drive it with the real client (pip install praetorian-cli==2.6.2):\n"
        "  export HOME=$(mktemp -d)        # fresh token cache\n"
        "  set -a; . .chariot-migrate/demo.env; set +a\n"
        "  guard add asset -g example.com -i 1.2.3.4 -f external\n"
        "  guard list assets\n"
        "Then move a service: chariot-migrate shift asset-discovery 25 --reason demo"
    )
    return {"env": env, "recipe": recipe, "account": DEMO_EMAIL}
