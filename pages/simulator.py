"""Simulator: insert one trade, run the random-walk generator in the background, or run a scenario
that proves a piece of the pipeline's semantics live (expected beside shown)."""

import pandas as pd
import streamlit as st
from kafka.errors import KafkaError
from pymongo.errors import PyMongoError

from pipeline.sinks.mongo import describe_address
from simulator import scenarios
from simulator.trades import SIDES, InvalidTrade, insert_trade, price_text, validate_trade
from ui import live
from ui.runtime import get_runtime, listed_stocks

SCENARIO_TIMEOUT_S = 30

runtime = get_runtime()
stocks = listed_stocks()
symbols = sorted(stocks)
transactions = runtime.mongo[runtime.settings.database]["transaction"]
st.title("🎲 Trade simulator")
st.caption(f"Trades are inserted into `{runtime.settings.database}.transaction` on "
           f"{describe_address(runtime.settings)}; change data capture carries them to the dashboard.")


def unavailable(what: str, exc: Exception) -> None:
    service = "MongoDB" if isinstance(exc, PyMongoError) else "Kafka" if isinstance(exc, KafkaError) else "the pipeline"
    st.error(f"Could not {what}: {service} is unavailable or too slow ({type(exc).__name__}). "
             "See the **Pipeline** page.", icon="🛑")


# -- one trade --------------------------------------------------------------------------------------
with st.form("trade", clear_on_submit=False):
    st.subheader("One trade")
    left, right = st.columns(2)
    symbol = left.selectbox("Symbol", symbols, key="trade_symbol")
    side = right.radio("Side", SIDES, horizontal=True, key="trade_side")
    price = left.text_input("Price (₹)", value=f"{stocks[symbol].reference_price:.2f}" if symbol else "",
                            key="trade_price")
    quantity = right.number_input("Quantity", min_value=1, max_value=10_000_000, value=10, step=1,
                                  key="trade_quantity")
    submitted = st.form_submit_button("Insert trade", type="primary")

if submitted:
    try:
        trade = validate_trade(symbol, side, price, quantity, stocks)
        trade_id = insert_trade(transactions, trade)
    except InvalidTrade as exc:
        st.error(str(exc), icon="✋")
    except PyMongoError as exc:
        unavailable("insert the trade", exc)
    else:
        st.success(f"Inserted {trade.side} {trade.quantity} × {trade.symbol} @ ₹{price_text(trade.price)} (id {trade_id}).",
                   icon="✅")

# -- random-walk generator ------------------------------------------------------------------------
st.subheader("Random-walk generator")
generator = runtime.generator
with st.form("generator"):
    left, right = st.columns(2)
    rate = left.slider("Trades per second", 1, 5000, 50, key="gen_rate")
    duration = right.slider("Duration (s)", 5, 600, 60, step=5, key="gen_duration")
    walk_symbols = left.multiselect("Symbols", symbols, default=[s for s in symbols if not s.startswith("ZT")][:10],
                                    key="gen_symbols")
    volatility = right.slider("Volatility per trade (%)", 0.05, 2.0, 0.2, 0.05, key="gen_volatility")
    start = st.form_submit_button("Start", type="primary")
if start:
    try:
        plan = generator.start(rate, walk_symbols, volatility, duration,
                               {s: stocks[s].reference_price for s in walk_symbols})
    except ValueError as exc:
        st.error(str(exc), icon="✋")
    else:
        st.toast(f"Generating {plan.total:,} trades over {plan.duration_s:.0f} s")


def generator_ticking() -> float | None:
    # Progress moves on its own while the generator runs (the state only once the pipeline carries it).
    return 1.0 if generator.progress().state == "running" else None


@live.fragment(runtime, idle_s=generator_ticking)
def generator_progress() -> None:
    progress = generator.progress()
    if progress.plan is None:
        st.caption("Not started yet.")
        return
    plan = progress.plan
    rate_text = f" · {progress.achieved_rate:,.0f} trades/s" if progress.achieved_rate else ""
    st.progress(progress.fraction, text=f"{progress.state}: {progress.inserted:,} of {plan.total:,} trades "
                                        f"across {len(plan.symbols)} symbols{rate_text}")
    if progress.error:
        st.error(progress.error, icon="🛑")
    if progress.state == "running" and st.button("Stop", key="gen_stop"):
        generator.stop()
        st.rerun(scope="fragment")


generator_progress()

# -- scenarios ------------------------------------------------------------------------------------
st.subheader("Scenarios")
st.caption("Each writes real input for one stock and then checks the live state against what it must show. "
           "Pick a stock the generator is not trading, or the figures will move under the check.")
left, right = st.columns(2)
key = left.selectbox("Scenario", list(scenarios.SCENARIOS), format_func=lambda k: scenarios.SCENARIOS[k].title,
                     key="scenario")
scenario_symbol = right.selectbox("Stock", symbols, index=symbols.index("WIPRO") if "WIPRO" in symbols else 0,
                                  key="scenario_symbol")
chosen = scenarios.SCENARIOS[key]
st.markdown(f"**Writes:** {chosen.what}  \n**The dashboard must show:** {chosen.expect}")


def observe(symbol: str = scenario_symbol) -> scenarios.Figures:
    return scenarios.Figures.of(runtime.state.snapshot(), symbol)


if st.button(f"Run “{chosen.title}”", key="scenario_run", type="primary"):
    try:
        with st.spinner("Writing the scenario's input …"):
            st.session_state["scenario_result"] = scenarios.run(
                key, scenario_symbol, stocks[scenario_symbol].reference_price, transactions, runtime.settings, observe)
    except (PyMongoError, KafkaError, TimeoutError) as exc:
        unavailable("run the scenario", exc)


def scenario_ticking() -> float | None:
    # A verdict still waiting turns into "timed out" with time alone; a settled one changes only with the state.
    run = st.session_state.get("scenario_result")
    if run is None:
        return None
    now = scenarios.verdict(run, observe(run.symbol), SCENARIO_TIMEOUT_S)
    return None if now.agreed or now.timed_out else 1.0


@live.fragment(runtime, idle_s=scenario_ticking)
def scenario_check() -> None:
    run = st.session_state.get("scenario_result")
    if run is None:
        return
    # Computed anew at every redraw from the figures shown now, never latched: figures that agreed
    # once and then moved (a replay counted after all) must not keep a green verdict.
    now = scenarios.verdict(run, observe(run.symbol), SCENARIO_TIMEOUT_S)
    st.markdown(f"**{run.scenario.title} on {run.symbol}**")
    st.dataframe(pd.DataFrame(now.rows), hide_index=True, width="stretch",
                 column_config={"Agree": st.column_config.CheckboxColumn()})
    if now.agreed:
        st.success(f"The dashboard shows exactly what the scenario must produce (checked just now, {now.waited_s:.1f} s "
                   "after it was written; the check repeats at every refresh).", icon="✅")
    elif not now.timed_out:
        st.info("Waiting for the pipeline to process the input …", icon="⏳")
    else:
        st.error(f"{now.waited_s:.0f} s after the input was written the shown figures differ from the expected ones. "
                 "Another writer may be trading this stock; otherwise see the **Pipeline** page.", icon="❌")


scenario_check()
