"""CPU and memory (RSS) of each service, sampled once a second and summarised per phase."""

from __future__ import annotations

import threading
from collections import defaultdict

import psutil


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

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for name, process in list(self.processes.items()):
                self._samples[self.phase][name].append((self._cpu(process), self._rss(process)))

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
