"""A text progress bar for long management commands (no dependency needed)."""

import sys
import time


class Progress:
    """Prints `label [#####.....] 50% 500/1000` on one line, at most ~10 times a second."""

    WIDTH = 30

    def __init__(self, total, label="", stream=None):
        self.total = max(int(total), 0)
        self.label = label
        # A command's OutputWrapper ends every write with a newline; use its stream.
        self.stream = getattr(stream, "_out", stream) or sys.stderr
        self.done = 0
        self._last = 0.0

    def advance(self, n=1):
        self.done += n
        now = time.monotonic()
        if now - self._last >= 0.1 or self.done >= self.total:
            self._last = now
            self._draw()

    def _draw(self):
        share = self.done / self.total if self.total else 1.0
        share = min(share, 1.0)
        filled = int(share * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {share:4.0%} {self.done}/{self.total}")
        self.stream.flush()

    def finish(self):
        if self.done < self.total or not self._last:
            self._draw()
        self.stream.write("\n")
        self.stream.flush()
