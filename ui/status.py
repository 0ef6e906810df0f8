"""Banners for services that are down or starting: words, never a stack trace."""

from __future__ import annotations

import streamlit as st

from pipeline.domain.status import QueryState
from ui.runtime import AppRuntime


def show_service_banners(runtime: AppRuntime) -> None:
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
                 "page (`python -m stack status`) and restart the app.", icon="🛑")
