"""Python stubs for the kit's protos (``kit/proto/*.proto``), generated, never committed.

``stubs("asset_discovery")`` returns the ``(messages, services)`` modules protoc makes from
``kit/proto/asset_discovery.proto``, running ``grpc_tools.protoc`` first when the generated files
are missing or older than the .proto. The install step (``make .venv/.installed``) runs
``python -m chariot_migrate.services.kit.grpc_codegen`` so a fresh clone has them before any
service starts; the lazy check covers an edited .proto. Output goes to ``kit/proto/_generated/``
(git-ignored), or to ``$CHARIOT_GRPC_GEN_DIR`` when the package directory is read-only.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import sys
import tempfile
from functools import cache
from pathlib import Path
from types import ModuleType

PROTO_DIR = Path(__file__).with_name("proto")


def out_dir() -> Path:
    return Path(os.environ.get("CHARIOT_GRPC_GEN_DIR") or PROTO_DIR / "_generated")


def generated_paths(name: str, out: Path) -> tuple[Path, Path]:
    return out / f"{name}_pb2.py", out / f"{name}_pb2_grpc.py"


def is_stale(proto: Path, outputs: tuple[Path, ...]) -> bool:
    """Generate again when an output is missing or older than the .proto."""
    try:
        return min(p.stat().st_mtime for p in outputs) < proto.stat().st_mtime
    except FileNotFoundError:
        return True


def generate(name: str, out: Path | None = None) -> tuple[Path, Path]:
    """Run protoc for ``proto/<name>.proto`` if needed. Concurrent callers (services starting
    together) serialise on a lock file; files appear atomically (written aside, then renamed)."""
    from grpc_tools import protoc

    out = out or out_dir()
    proto = PROTO_DIR / f"{name}.proto"
    outputs = generated_paths(name, out)
    if not is_stale(proto, outputs):
        return outputs
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_stale(proto, outputs):
            return outputs
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            include = str(Path(protoc.__file__).parent / "_proto")  # google/protobuf/*.proto
            code = protoc.main(["grpc_tools.protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={tmp}",
                                f"--grpc_python_out={tmp}", str(proto)])
            if code != 0:
                raise RuntimeError(f"protoc failed ({code}) on {proto}")
            for path in outputs:
                os.replace(Path(tmp) / path.name, path)
    return outputs


def _load(module_name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@cache
def stubs(name: str) -> tuple[ModuleType, ModuleType]:
    """(``<name>_pb2``, ``<name>_pb2_grpc``), generated if needed. The grpc module imports the
    messages as top-level ``<name>_pb2`` (protoc's convention), so that is the name they get."""
    messages_path, services_path = generate(name)
    messages = _load(f"{name}_pb2", messages_path)
    services = _load(f"{name}_pb2_grpc", services_path)
    return messages, services


def main() -> None:
    for proto in sorted(PROTO_DIR.glob("*.proto")):
        for path in generate(proto.stem):
            print(path)


if __name__ == "__main__":
    main()
