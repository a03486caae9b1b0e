"""Drive a full-screen program in a detached tmux session of fixed size."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

TMUX = shutil.which("tmux")


class Tmux:
    """
    One private tmux server (its own socket) running one command.

    :param command: argv of the program; its exit status goes to
        ``status_path`` when it ends.
    """

    def __init__(self, command: list[str], cwd: Path, width: int = 120, height: int = 40) -> None:
        assert TMUX is not None, "tmux is not installed"
        self.socket = f"chatnet-test-{os.getpid()}-{id(self)}"
        self.status_path = cwd / "tmux-exit-status"
        shell = f"cd {shlex.quote(str(cwd))} && {shlex.join(command)}; echo $? > {shlex.quote(str(self.status_path))}; sleep 600"
        self._tmux("new-session", "-d", "-s", "main", "-x", str(width), "-y", str(height), shell)

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            [TMUX, "-L", self.socket, "-f", "/dev/null", *args],  # type: ignore[list-item]
            capture_output=True, timeout=10,
        )
        if done.returncode != 0:
            raise AssertionError(f"tmux {args[0]} failed: {done.stderr.decode()}")
        return done.stdout.decode("utf-8", "replace")

    def send(self, *keys: str) -> None:
        """``tmux send-keys``: words are typed, names like Enter are keys."""
        self._tmux("send-keys", "-t", "main", *keys)

    def type(self, text: str) -> None:
        """Type ``text`` literally, then Enter."""
        self._tmux("send-keys", "-t", "main", "-l", text)
        self._tmux("send-keys", "-t", "main", "Enter")

    def resize(self, width: int, height: int) -> None:
        """Change the terminal's size, as a user dragging the window would."""
        self._tmux("resize-window", "-t", "main", "-x", str(width), "-y", str(height))

    def screen(self) -> str:
        """What the terminal shows now."""
        return self._tmux("capture-pane", "-p", "-t", "main")

    def rang(self) -> bool:
        """Whether the program has rung the terminal bell."""
        return self._tmux("display-message", "-p", "-t", "main", "#{window_bell_flag}").strip() == "1"

    def coloured_screen(self) -> str:
        """The screen with its colours, as SGR escape sequences."""
        return self._tmux("capture-pane", "-p", "-e", "-t", "main")

    def wait_for(self, pattern: str, timeout: float = 20.0, interval: float = 0.05) -> re.Match[str]:
        """Poll the screen until ``pattern`` (a regex) shows; bounded."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            match = regex.search(screen)
            if match:
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {pattern!r}; screen:\n{screen}")
            time.sleep(interval)  # polling an external terminal, bounded by the deadline

    def wait_exit(self, timeout: float = 30.0) -> int:
        """The program's exit status, once it has ended."""
        deadline = time.monotonic() + timeout
        while not self.status_path.exists() or not self.status_path.read_text().strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"program did not exit; screen:\n{self.screen()}")
            time.sleep(0.05)
        return int(self.status_path.read_text())

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, timeout=10)  # type: ignore[list-item]
