"""Banners for services that are down or starting: words, never a stack trace."""

from __future__ import annotations

import streamlit as st

from pipeline.domain.status import QueryState
from stack.embedded import Phase, Plan
from ui.health import kafka_lag
from ui.runtime import AppRuntime

STARTUP_FIX = ("Fix that and restart the app; the terminal that runs it shows the details. On a machine not set up "
               "yet, run `scripts/bootstrap.sh` first: it installs and fetches what is missing (or stop this app and "
               "use `make run`, which does that and then starts the app).")


# The screen is "behind" when its newest trades took longer than this from the database to the state: a backlog (after
# a restart, or a burst the machine cannot keep up with), not the ordinary second or less.
BEHIND_S = 10.0
NEWEST_SAMPLES = 200  # the newest applied trades the banner looks at
RECENT_S = 30.0  # ... if applied this recently: once caught up (or quiet) the banner goes


def catching_up_text(delay_s: float | None, lag: int | None) -> str | None:
    """The words of the catching-up banner, or None: ``delay_s`` is the newest trades' database → state delay,
    ``lag`` the change events on the topic the record has not counted yet (None when unknown)."""
    if delay_s is None or delay_s <= BEHIND_S:
        return None
    still = f"; {lag:,} change events still to count" if lag else ""
    late = f"{delay_s:.0f} s" if delay_s < 90 else f"{delay_s / 60:.0f} min"
    return (f"**Catching up**: the newest trades on screen reached it {late} after they were written; the "
            f"stream is working through a backlog{still}. Every figure is exact for what it has counted, and the screen "
            "catches up by itself (the **Pipeline** page shows the lag).")


def show_startup_banner(runtime: AppRuntime) -> bool:
    """The app's own start-up (its local stack, Spark's jars), while it runs or after it failed; True if shown."""
    stack = runtime.stack_status()
    if stack is None:
        return False
    if stack.phase is Phase.FAILED:
        st.error(f"**The app could not start its services**: {stack.error}. {STARTUP_FIX}", icon="🛑")
        return True
    if stack.phase is Phase.STARTING and stack.plan is not Plan.CONFIGURED:
        st.info("Starting the local stack for this app: MongoDB stand-in, Kafka, CDC relay, archive (seconds; longer on "
                f"a first run). What it starts stops when the app ends. Now: {stack.detail}", icon="⏳")
        return True
    return False


def show_service_banners(runtime: AppRuntime) -> None:
    # One container, always drawn: banners come and go inside it and what follows keeps its place. Streamlit
    # matches each element to the last run's by its position, so a banner appearing above the "As text" expander
    # made that a new element, closed again.
    with st.container():
        _service_banners(runtime)


def _service_banners(runtime: AppRuntime) -> None:
    if show_startup_banner(runtime):
        return
    for check in runtime.health.latest().problems:
        st.error(f"**{check.name}** is unavailable: {check.detail}", icon="🛑")
    status = runtime.query_status()
    if status.state is QueryState.STARTING:
        st.info("Starting the streaming query (Spark takes about ten seconds) …", icon="⏳")
    elif status.state is QueryState.RESTARTING:
        st.warning(f"The streaming query is down ({status.error}) and restarts by itself; figures resume "
                   "where they stopped, nothing is lost or counted twice. See the **Pipeline** page.", icon="🔁")
    elif status.state is QueryState.FAILED:
        st.error(f"The streaming query stopped: {status.error}. Check the services on the **Pipeline** "
                 "page (`python -m stack status` lists the local stack's) and restart the app.", icon="🛑")
    delay = runtime.state.freshness(window_s=RECENT_S, newest=NEWEST_SAMPLES).p50_s
    behind = catching_up_text(delay, kafka_lag(runtime.health.latest().end_offsets, status.progress,
                                               runtime.settings.trades_topic))
    if behind:
        st.warning(behind, icon="⏩")
