"""CPU and memory (RSS) of each service, sampled once a second and summarised per phase."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping

import psutil

from pipeline.waits import wait_until

# The host's share: CPU time the hypervisor gave other guests while this VM's threads were ready to run, as a
# process would show it (100 = one core). A phase with much of it says the VM, not the code, was slow then.
STOLEN = "VM: stolen by the host"


class ResourceSampler:
    """CPU and RSS of named processes (a pid of None, a service not started here, is left out)."""

    def __init__(self, processes: dict[str, int | None], interval_s: float = 1.0) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in processes.items() if pid is not None}
        self.interval_s = interval_s
        self.phase = "idle"
        self._samples: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
        self._stop = threading.Event()
        for process in self.processes.values():
            self._cpu(process)  # the first reading only starts psutil's clock
        self._stolen_at = self._stolen()
        self._thread = threading.Thread(target=self._run, name="resources", daemon=True)
        self._thread.start()

    def add(self, name: str, pid: int) -> None:
        process = psutil.Process(pid)
        self._cpu(process)
        self.processes[name] = process

    @staticmethod
    def _cpu(process: psutil.Process) -> float:
        try:
            return process.cpu_percent()
        except psutil.Error:
            return 0.0

    @staticmethod
    def _rss(process: psutil.Process) -> float:
        try:
            return process.memory_info().rss / 2**20
        except psutil.Error:
            return 0.0

    @staticmethod
    def _stolen() -> tuple[float, float]:
        return time.monotonic(), getattr(psutil.cpu_times(), "steal", 0.0)  # (Linux only: else none is shown)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for name, process in list(self.processes.items()):
                self._samples[self.phase][name].append((self._cpu(process), self._rss(process)))
            (was_at, was), (now_at, now) = self._stolen_at, self._stolen()
            self._stolen_at = now_at, now
            self._samples[self.phase][STOLEN].append((100 * (now - was) / max(now_at - was_at, 1e-3), 0.0))

    def recent_cpu(self, names: Iterable[str], samples: int, after: Mapping[str, int] | None = None) -> float | None:
        """The summed CPU % of these processes, averaged over the current phase's last ``samples`` samples;
        None until there are that many (taken after the ``after`` counts of :meth:`counts`, if given)."""
        series = {name: self._samples[self.phase].get(name, []) for name in names if name in self.processes}
        if not series or any(len(values) - (after or {}).get(name, 0) < samples for name, values in series.items()):
            return None
        return sum(sum(cpu for cpu, _ in values[-samples:]) / samples for values in series.values())

    def counts(self) -> dict[str, int]:
        """How many samples each process has in the current phase."""
        return {name: len(values) for name, values in self._samples[self.phase].items()}

    def wait_steady(self, names: Iterable[str], window: int, timeout_s: float) -> float | None:
        """Seconds until the summed CPU of these processes is steady: the means of two running windows of
        ``window`` samples, taken from now on, within 2 points of a core or a tenth of each other. None if not
        within ``timeout_s``."""
        names, started, before, means = list(names), time.monotonic(), self.counts(), []

        def steady() -> bool:
            if (mean := self.recent_cpu(names, window, after=before)) is None:
                return False
            means.append(mean)
            return len(means) >= 2 and abs(means[-1] - means[-2]) <= max(2.0, 0.1 * means[-2])

        try:
            wait_until(steady, timeout=timeout_s, interval=window * self.interval_s, what="CPU steady")
        except TimeoutError:
            return None
        return round(time.monotonic() - started, 1)

    def summary(self, phase: str) -> dict[str, dict[str, float]]:
        """Per process: mean CPU % (100 = one core) and peak RSS in MiB during ``phase``."""
        result = {}
        for name, samples in self._samples.get(phase, {}).items():
            if samples:
                result[name] = {"cpu_pct": round(sum(c for c, _ in samples) / len(samples), 1),
                                "rss_mib": round(max(r for _, r in samples), 1)}
        return result

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
