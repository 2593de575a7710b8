"""`manage.py bench --profile`: sample every process of the pipeline scenario with py-spy (CPU
only: samples of threads holding the GIL) and summarise where the time goes, per process."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

PROJECT = ("eventbus/", "orders/", "inventory/", "notifications/", "bench/")


def py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else None


class Profiler:
    """Start samplers on processes; finish() stops them and summarises."""

    def __init__(self, run_dir: Path, root: Path) -> None:
        self.run_dir = run_dir
        self.root = f"{root}/"
        self.spies: dict[str, tuple[subprocess.Popen, Path]] = {}

    def start(self, pids: dict[str, int]) -> bool:
        """Sample each process (until finish() or its exit); may be called again for more."""
        binary = py_spy()
        if binary is None:
            return False
        for name, pid in pids.items():
            out = self.run_dir / f"profile-{name}.raw"
            spy = subprocess.Popen(
                [binary, "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", "200", "--nonblocking", "--gil"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            self.spies[name] = (spy, out)
        return True

    def finish(self) -> str:
        """Wait for the samplers and return (and write) the summary."""
        for spy, _ in self.spies.values():
            spy.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
        sections = []
        for name, (spy, out) in self.spies.items():
            _, err = spy.communicate(timeout=60)
            if not out.exists():
                sections.append(f"== {name}: no profile ({err.decode(errors='replace').strip()[-300:]})")
                continue
            sections.append(summarise(name, out, self.root))
        text = "\n\n".join(sections)
        (self.run_dir / "profile-summary.txt").write_text(text + "\n")
        return text


def summarise(name: str, raw: Path, root: str, top: int = 15) -> str:
    """Self time per function, and time inside the project's own functions (inclusive)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_label(f, root) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            if any(p in frame for p in PROJECT):
                inclusive[frame] += n
    if not total:
        return f"== {name}: no samples"
    lines = [f"== {name}: {total} samples holding the GIL", "   self time:"]
    lines += [f"   {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("   in the project's functions (inclusive):")
    lines += [f"   {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)


def _label(frame: str, root: str) -> str:
    """'func (/path/to/file.py:12)' -> 'func (file relative to site-packages or the repo)'."""
    func, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", root, "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{func} ({where.rsplit(':', 1)[0]})"
