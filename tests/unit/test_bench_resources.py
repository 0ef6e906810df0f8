"""The bench's CPU sampler: an idle phase starts once the measured processes' CPU is steady, judged only by
samples taken after the wait began (``bench.resources``)."""

import os

from bench.resources import STOLEN, ResourceSampler


def test_a_quiet_process_is_steady_from_fresh_samples_only():
    sampler = ResourceSampler({"me": os.getpid()}, interval_s=0.05)
    try:
        sampler.phase = "settle"
        assert sampler.recent_cpu(["me"], 2, after=sampler.counts()) is None  # nothing sampled since
        settled = sampler.wait_steady(["me"], window=2, timeout_s=30)
        assert settled is not None and sampler.counts()["me"] >= 4  # two windows of two fresh samples
        assert sampler.recent_cpu(["somebody else"], 2) is None
        assert sampler.summary("settle")[STOLEN]["cpu_pct"] >= 0  # the host's share beside every phase
    finally:
        sampler.close()
