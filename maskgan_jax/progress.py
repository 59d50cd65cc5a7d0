"""A one-line progress display with rate and ETA on stderr, for long host loops."""
from __future__ import annotations

import sys
import time


def _fmt_s(s: float) -> str:
    s = max(0, int(round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class Progress:
    """``with Progress(total, "decode") as p: ... p.update(n)`` prints done/total, rate, ETA.

    Redraws at most every ``interval`` seconds; on a non-tty stream it prints plain lines.
    """

    def __init__(self, total: int, desc: str = "", unit: str = "it", stream=None,
                 interval: float = 0.5, enabled: bool = True):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.stream = stream or sys.stderr
        self.interval = interval if self.stream.isatty() else max(interval, 5.0)
        self.enabled = enabled
        self.done = 0
        self.t0 = time.perf_counter()
        self._last = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def line(self) -> str:
        """The current status line (also used by tests)."""
        el = time.perf_counter() - self.t0
        rate = self.done / el if el > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta_s = _fmt_s(eta) if eta == eta else "--:--"
        return (f"{self.desc} {self.done}/{self.total} ({pct:5.1f}%) "
                f"{rate:.3g} {self.unit}/s elapsed {_fmt_s(el)} ETA {eta_s}")

    def update(self, n: int = 1, force: bool = False) -> None:
        """Counts ``n`` more units done and redraws if due."""
        self.done += n
        now = time.perf_counter()
        if self.enabled and (force or now - self._last >= self.interval or self.done >= self.total):
            self._last = now
            end = "\r" if self.stream.isatty() and self.done < self.total else "\n"
            print(self.line(), end=end, file=self.stream, flush=True)

    def close(self) -> None:
        """Prints the final line."""
        if self.enabled and self.stream.isatty():
            print(file=self.stream, flush=True)
