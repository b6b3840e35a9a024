"""
The fast fake CLI: C{fastcli.c} compiled with the machine's C compiler and
installed as C{claude}, C{codex} and C{gemini}, and the prompts that steer
it (see the comment at the top of C{fastcli.c}).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from benchmarks.harness import WatchedProcess

NAMES = ("claude", "codex", "gemini")
SOURCE = Path(__file__).with_name("fastcli.c")


class BuildFailed(Exception):
    """The fake could not be compiled."""


async def build(reactor: Any, directory: Path) -> Path:
    """
    Compile the fake into C{directory} and link it there under each CLI's
    name.

    @return: C{directory}, to put first on C{PATH}.
    @raise BuildFailed: When there is no C compiler or compiling failed.
    """
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise BuildFailed("no C compiler (cc, gcc or clang) on PATH; set CC")
    directory.mkdir(parents=True, exist_ok=True)
    binary = directory / "fastcli"
    command = [compiler, "-O2", "-o", str(binary), str(SOURCE)]
    compiling = WatchedProcess()
    reactor.spawnProcess(compiling, command[0], command, env=dict(os.environ))
    status = await compiling.ended
    if status != 0:
        raise BuildFailed(f"{compiler} exited with status {status}:\n{compiling.text()}")
    for name in NAMES:
        (directory / name).symlink_to(binary.name)
    return directory


def prompt(
    *,
    size: int | None = None,
    chunks: int | None = None,
    gap_us: int | None = None,
    stamp: bool = False,
    count: bool = False,
    text: str = "bench",
) -> str:
    """A prompt telling the fake how to answer."""
    words = [text]
    for key, value in (("size", size), ("chunks", chunks), ("gap_us", gap_us)):
        if value is not None:
            words.append(f"bench:{key}={value}")
    if stamp:
        words.append("bench:stamp=1")
    if count:
        words.append("bench:count=1")
    return " ".join(words)


def stamps(text: str) -> list[int]:
    """The CLOCK_MONOTONIC stamps (ns) in C{text}, as C{bench:stamp=1} writes them."""
    return [int(piece) for piece in text.split("@")[1::2] if piece.isdigit()]
