"""Wall time and peak memory of a block of code, cheap enough to wrap every node.

Peak memory is the process's resident set size (RSS), sampled by a background thread from
``/proc/self/statm`` every ``interval`` seconds (Linux); elsewhere it falls back to the
process's lifetime peak (``resource.getrusage``). The sampler sleeps between reads, so the
overhead is one tiny file read per interval.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = "/proc/self/statm"


def current_rss() -> int | None:
    """Resident set size in bytes, or ``None`` where /proc is not available."""
    try:
        with open(_STATM) as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def lifetime_peak_rss() -> int:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


@dataclass
class Measurement:
    """One timed block: call :meth:`stop` to end it."""

    interval: float = 0.05
    started: float = field(default_factory=time.perf_counter)
    peak: int = 0
    seconds: float = 0.0
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        rss = current_rss()
        self.peak = rss or 0
        if rss is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(self.interval):
            rss = current_rss()
            if rss is not None and rss > self.peak:
                self.peak = rss

    def stop(self) -> Measurement:
        self.seconds = time.perf_counter() - self.started
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            self.peak = max(self.peak, current_rss() or 0)
        else:
            self.peak = lifetime_peak_rss()
        return self


def format_table(rows: list[dict]) -> str:
    """A plain-text table of node, seconds, peak MiB."""
    width = max([len("node"), *(len(r["node"]) for r in rows)])
    lines = [f"{'node':<{width}}  {'seconds':>8}  {'peak MiB':>9}"]
    lines += [f"{r['node']:<{width}}  {r['seconds']:>8.2f}  {r['peak_rss_mib']:>9.0f}" for r in rows]
    total = sum(r["seconds"] for r in rows)
    peak = max((r["peak_rss_mib"] for r in rows), default=0)
    lines.append(f"{'total':<{width}}  {total:>8.2f}  {peak:>9.0f}")
    return "\n".join(lines)
