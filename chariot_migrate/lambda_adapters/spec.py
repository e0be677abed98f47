"""Plain description of one Lambda function, shared by the emulator, the moto deployer and
whoever declares an estate of functions (e.g. ``chariot_migrate.legacy.functions``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    name: str  # e.g. "chariot-asset"
    handler: str  # "package.module.function", resolved inside the deployment package
    code_dir: str  # directory whose contents form the deployment package (zipped on deploy)
    environment: dict[str, str] = field(default_factory=dict)
    timeout_s: int = 30
    memory_mb: int = 512
    runtime: str = "python3.11"
    description: str = ""
