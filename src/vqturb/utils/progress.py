"""A dependency-free progress bar with rate, ETA and live fields (loss, simulated time, ...).

Writes to stderr; redraws in place on a terminal and prints a line every ``log_every`` seconds
otherwise (CI logs, ``make demo`` piped to a file) so progress is always visible.
"""

from __future__ import annotations

import io
import sys
import time


def _fmt_time(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Progress over ``total`` units.

    Example::

        with Progress(total=n_steps, desc="train", unit="step") as bar:
            for step in range(n_steps):
                ...
                bar.update(1, loss=f"{loss:.4f}")
    """

    def __init__(
        self,
        total: int | float,
        desc: str = "",
        unit: str = "it",
        stream: io.TextIOBase | None = None,
        disable: bool = False,
        log_every: float = 10.0,
        width: int = 24,
    ):
        self.total = float(total)
        self.desc = desc
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.disable = disable
        self.log_every = log_every
        self.width = width
        self.n = 0.0
        self.fields: dict[str, str] = {}
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._drawn_n: float | None = None  # n at the last line printed (non-tty)
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int | float = 1, **fields) -> None:
        self.n += n
        self.fields.update({k: str(v) for k, v in fields.items()})
        now = time.perf_counter()
        interval = 0.1 if self._tty else self.log_every
        if now - self._last_draw >= interval or self.n >= self.total:
            self._draw(now)

    def set(self, n: int | float, **fields) -> None:
        self.update(n - self.n, **fields)

    def line(self, now: float | None = None) -> str:
        now = time.perf_counter() if now is None else now
        elapsed = now - self.start
        frac = min(1.0, self.n / self.total) if self.total > 0 else 1.0
        rate = self.n / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.n) / rate if rate > 0 else float("inf")
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        extra = " ".join(f"{k}={v}" for k, v in self.fields.items())
        n_str = f"{self.n:g}/{self.total:g}"
        return (
            f"{self.desc} [{bar}] {100 * frac:5.1f}% {n_str} {self.unit} "
            f"{rate:.3g} {self.unit}/s elapsed {_fmt_time(elapsed)} eta {_fmt_time(eta)} {extra}"
        ).rstrip()

    def _draw(self, now: float) -> None:
        self._last_draw = now
        if self.disable:
            return
        if self._tty:
            self.stream.write("\r\x1b[2K" + self.line(now))
        else:
            self._drawn_n = self.n
            self.stream.write(self.line(now) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.disable:
            return
        if self._tty or self._drawn_n != self.n:  # no repeated final log line
            self._draw(time.perf_counter())
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
