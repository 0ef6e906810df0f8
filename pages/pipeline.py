"""Pipeline: is every service up, how fast do trades get through, and what was set aside."""

import pandas as pd
import streamlit as st

from pipeline.domain.snapshot import MarketSnapshot
from pipeline.domain.status import QueryState, QueryStatus
from ui import live, push
from ui.charts import batch_timeline
from ui.exchange import naive_ist
from ui.format import ago, batches_frame, plain, seconds
from ui.health import HealthReport, input_rate, kafka_lag
from ui.ledger_view import LATE, LATE_COLUMNS, REJECTED, REJECTED_COLUMNS, late_rows, ledger_view, rejected_rows
from ui.runtime import get_runtime, skipped_stock_documents

ICONS = {True: "🟢", False: "🔴", None: "⏳"}

runtime = get_runtime()
st.title("🩺 Pipeline")
st.caption("MongoDB change stream → CDC → Kafka → Spark Structured Streaming → this app's state.")


def service_cards(health: HealthReport, status: QueryStatus) -> None:
    query_detail = status.describe()
    if status.state is QueryState.READING and status.read_at is not None:
        query_detail += f", read {ago(status.read_at)}"
    if status.live:  # the default mode: where the live-ticks path stands
        query_detail += f" · {status.live}"
    cards = [(check.name, check.ok, check.detail) for check in (health.mongo, health.kafka, health.cdc)]
    cards += [("Spark query", status.state.healthy, query_detail), (health.archive.name, health.archive.ok,
                                                                    health.archive.detail)]
    for column, (name, ok, detail) in zip(st.columns(len(cards)), cards, strict=True):
        with column.container(border=True):
            st.markdown(f"{ICONS[ok]} **{name}**")
            st.caption(detail)
    st.caption(f"Services checked {ago(health.checked_at)}.")


def flow_metrics(snapshot: MarketSnapshot, health: HealthReport, status: QueryStatus) -> None:
    freshness = runtime.state.freshness(window_s=60)
    lag = kafka_lag(health.end_offsets, status.progress, runtime.settings.trades_topic)
    last = snapshot.last_batch
    # Two rows of three: a card a sixth of the page wide cut "976 msg/s" to "976 ms…" (which reads as a time) and
    # "2 min ago" to "2 min a…".
    cols = st.columns(3) + st.columns(3)
    rate = input_rate(status.progress)
    cols[0].metric("Input rate", f"{rate:,.0f} msg/s" if rate is not None else "–",
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
    error = snapshot.query_error or status.error
    if error:
        st.error(f"Last error: {error}", icon="🛑")
    if status.live:
        st.caption(f"Live ticks: {snapshot.live_ticks:,} trades on screen ahead of the micro-batch record, which "
                   "takes them over with its next batch.")
    if snapshot.dropped_as_old:
        st.warning(f"{snapshot.dropped_as_old:,} change events were older than the replay horizon (DEDUPE_HORIZON_S = "
                   f"{runtime.settings.dedupe_horizon_s} s behind the newest) and were dropped as replays.", icon="⚠️")


def batch_chart(snapshot: MarketSnapshot) -> None:
    reports = runtime.state.batch_reports(window_s=600)
    st.subheader("Micro-batches, last 10 minutes")
    if reports:
        st.altair_chart(runtime.view("batch_timeline", (snapshot.version, len(reports)),
                                     lambda: batch_timeline(batches_frame(reports))), width="stretch")
    else:
        st.caption("No micro-batch has run in the last 10 minutes.")


def set_aside_tables(snapshot: MarketSnapshot) -> None:
    st.subheader("Set aside")
    if push.route_served():  # pushed at each change: rejects and late ticks arrive by the live path
        push.pushed("ledgers", "ledgers", ledger_view, ledger_view(snapshot))
    else:
        left, right = st.columns(2)
        rejected = pd.DataFrame(rejected_rows(snapshot), columns=REJECTED_COLUMNS)
        late = pd.DataFrame(late_rows(snapshot), columns=LATE_COLUMNS)
        left.metric(REJECTED, f"{int(rejected['Messages'].sum()):,}")
        left.dataframe(rejected, hide_index=True, width="stretch")
        right.metric(LATE, f"{int(late['Late ticks'].sum()):,}")
        right.dataframe(late, hide_index=True, width="stretch")
    st.caption(f"Rejected messages are kept in `{runtime.settings.database}.rejected` and on "
               f"`{runtime.settings.dead_letter_topic}`; late ticks in `late_ticks` and on "
               f"`{runtime.settings.late_topic}`.")


def since_start(snapshot: MarketSnapshot) -> None:
    """The record's totals since the stream's start (the Market and Stock pages show the trading day)."""
    with st.expander("Since the start (all sessions)"):
        st.dataframe(pd.DataFrame(
            [{"Symbol": symbol, "Trades": a.trades, "Volume": a.volume, "Low": float(a.low), "High": float(a.high),
              "Last": float(a.nav), "First trade (IST)": naive_ist(a.open_time)} for symbol, a in sorted(snapshot.stocks.items())],
            columns=["Symbol", "Trades", "Volume", "Low", "High", "Last", "First trade (IST)"]), hide_index=True, width="stretch")


def skipped_stocks() -> None:
    skipped = skipped_stock_documents()
    if skipped:
        lines = "\n".join(f"- {plain(document_id)}: {plain(reason)}" for document_id, reason in skipped[:20])
        st.warning(f"{len(skipped):,} document(s) of `{runtime.settings.database}.stock` list no usable symbol and "
                   f"are skipped (trades of them are rejected as `unknown_symbol`); give each a `symbol` field:\n"
                   f"{lines}", icon="⚠️")


# Also every 2 s without a change: the services are probed that often, and rates and lag move on their own.
# While trades flow, at most every 2 s too: the ledgers, which move with each reject, are pushed.
@live.fragment(runtime, idle_s=2, gap_s=push.REST_OF_PAGE_S)
def live_pipeline() -> None:
    health = runtime.health.latest()
    status = runtime.query_status()
    snapshot = runtime.state.snapshot()
    service_cards(health, status)
    flow_metrics(snapshot, health, status)
    batch_chart(snapshot)
    set_aside_tables(snapshot)
    since_start(snapshot)
    skipped_stocks()


live_pipeline()
