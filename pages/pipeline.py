"""Pipeline: is every service up, how fast do trades get through, and what was set aside."""

import pandas as pd
import streamlit as st

from pipeline.trades import REJECT_REASONS
from ui.charts import batch_timeline
from ui.format import ago, batches_frame, seconds
from ui.health import kafka_lag
from ui.runtime import get_runtime

ICONS = {True: "🟢", False: "🔴", None: "⏳"}

runtime = get_runtime()
st.title("🩺 Pipeline")
st.caption("MongoDB change stream → CDC → Kafka → Spark Structured Streaming → this app's state.")


@st.fragment(run_every=runtime.settings.dashboard_refresh_ms / 1000)
def live_pipeline() -> None:
    health = runtime.health.latest()
    status = runtime.query_status()
    progress = status.get("progress") or {}
    query_ok = {"running": True, "reading": True, "external": True, "starting": None}.get(status["state"], False)
    query_detail = f"{status['state']}: {status['error']}" if status.get("error") else status["state"]
    if status["state"] == "reading":
        query_detail = (f"runs elsewhere; this app reads its aggregates from MongoDB (batch {status['last_batch']}, "
                        f"read {ago(status['read_at'])})")
    if status.get("mode") == "realtime":
        query_detail = ("running in real-time mode: per-symbol figures only (candles, set-aside ledgers and recent "
                        "trades come with STREAM_MODE=microbatch)")
    if status.get("restarts"):
        query_detail += f" · restarted {status['restarts']} time(s)"
    cards = [(check.name, check.ok, check.detail) for check in (health.mongo, health.kafka, health.cdc)]
    cards += [("Spark query", query_ok, query_detail), (health.archive.name, health.archive.ok, health.archive.detail)]
    for column, (name, ok, detail) in zip(st.columns(len(cards)), cards, strict=True):
        with column.container(border=True):
            st.markdown(f"{ICONS[ok]} **{name}**")
            st.caption(detail)
    st.caption(f"Services checked {ago(health.checked_at)}.")

    snapshot = runtime.state.snapshot()
    freshness = runtime.state.freshness(window_s=60)
    lag = kafka_lag(health.end_offsets, progress, runtime.settings.trades_topic)
    last = snapshot.last_batch
    cols = st.columns(6)
    cols[0].metric("Input rate", f"{progress.get('inputRowsPerSecond', 0) or 0:,.0f} msg/s",
                   help="messages per second arriving at the query (Spark's last progress report)")
    cols[1].metric("Batch duration", seconds(last.duration_s) if last else "–",
                   help="time of the last micro-batch's handler: collect, durable writes, state update")
    cols[2].metric("Kafka lag", f"{lag:,}" if lag is not None else "–", help="messages on the topic not yet processed")
    cols[3].metric("Freshness p50", seconds(freshness.p50_s),
                   help="trade entering the pipeline (MongoDB commit time where the server reports it, else the "
                        "CDC's read) → visible in this app's state; over the last minute")
    cols[4].metric("Freshness p99", seconds(freshness.p99_s), help=f"{freshness.samples:,} trades in the last minute")
    cols[5].metric("Last batch", ago(last.finished_at) if last else "never",
                   help=f"batch {last.batch_id}: {last.messages:,} messages" if last else None)
    error = snapshot.query_error or status.get("error")
    if error:
        st.error(f"Last error: {error}", icon="🛑")

    reports = runtime.state.batch_reports(window_s=600)
    st.subheader("Micro-batches, last 10 minutes")
    if reports:
        st.altair_chart(runtime.view("batch_timeline", (snapshot.version, len(reports)),
                                     lambda: batch_timeline(batches_frame(reports))), width="stretch")
    else:
        st.caption("No micro-batch has run in the last 10 minutes.")

    st.subheader("Set aside")
    left, right = st.columns(2)
    rejected = pd.DataFrame(
        [{"Reason": reason, "Meaning": REJECT_REASONS.get(reason, ""), "Messages": count}
         for reason, count in sorted(snapshot.rejected_by_reason.items(), key=lambda item: -item[1])],
        columns=["Reason", "Meaning", "Messages"])
    late = pd.DataFrame([{"Symbol": symbol, "Late ticks": count} for symbol, count in
                         sorted(snapshot.late_by_symbol.items(), key=lambda item: -item[1])],
                        columns=["Symbol", "Late ticks"])
    left.metric("Rejected (dead letter)", f"{int(rejected['Messages'].sum()):,}")
    left.dataframe(rejected, hide_index=True, width="stretch")
    right.metric("Late ticks", f"{int(late['Late ticks'].sum()):,}")
    right.dataframe(late, hide_index=True, width="stretch")
    st.caption(f"Rejected messages are kept in `{runtime.settings.database}.rejected` and on "
               f"`{runtime.settings.dead_letter_topic}`; late ticks in `late_ticks` and on "
               f"`{runtime.settings.late_topic}`.")


live_pipeline()
