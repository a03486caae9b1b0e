"""
Profiling the server under load with py-spy (``python -m bench --profile DIR``)
and summing py-spy's collapsed stacks into "where does the time go".
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

#: This checkout's root, stripped from profiled file names.
CHECKOUT = str(Path(__file__).resolve().parent.parent)

def py_spy() -> str | None:
    return shutil.which("py-spy")


def start(pid: int, duration: float, out: Path, rate: int = 200) -> subprocess.Popen[bytes] | None:
    """Record ``pid`` for ``duration`` seconds into ``out`` (collapsed stacks)."""
    exe = py_spy()
    if not exe:
        return None
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(duration))),
         "--rate", str(rate), "--nonblocking", "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def frame_name(frame: str) -> str:
    """``"send (chatnet/outbound.py:42)"`` -> ``"chatnet/outbound.py:send"``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", f"{CHECKOUT}/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{name}" if path else name


def summarise(lines: Iterable[str]) -> tuple[Counter[str], Counter[str], int]:
    """
    Sum collapsed stacks (``a;b;c 17`` per line, root first).

    :returns: (self samples per function, inclusive samples per function,
        total samples).  A function recursing counts once per stack.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = [frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return own, inclusive, total


def report(path: Path, top: int = 25) -> str:
    """A text table of the hottest functions in one py-spy raw file."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            own, inclusive, total = summarise(f)
    except OSError as e:
        return f"{path}: {e}"
    if not total:
        return f"{path}: no samples"
    lines = [f"{path.name}: {total} samples", "  self%  incl%  function"]
    for name, n in own.most_common(top):
        lines.append(f"  {100 * n / total:5.1f}  {100 * inclusive[name] / total:5.1f}  {name}")
    lines.append("  -- inclusive, chatnet's own code --")
    ours = [(n, name) for name, n in inclusive.items() if name.startswith("chatnet/")]
    for n, name in sorted(ours, reverse=True)[:top]:
        lines.append(f"  {100 * own[name] / total:5.1f}  {100 * n / total:5.1f}  {name}")
    return "\n".join(lines)
