"""Simulator: insert one trade, or a burst of random-walk trades, into stockmarket.transaction."""

import streamlit as st
from pymongo.errors import PyMongoError

from pipeline.mongo import describe_address
from simulator.trades import SIDES, InvalidTrade, RandomWalk, insert_many, insert_trade, validate_trade
from ui.runtime import get_runtime, listed_stocks

runtime = get_runtime()
stocks = listed_stocks()
transactions = runtime.mongo[runtime.settings.database]["transaction"]
st.title("🎲 Trade simulator")
st.caption(f"Trades are inserted into `{runtime.settings.database}.transaction` on "
           f"{describe_address(runtime.settings)}; CDC carries them to the dashboard.")

with st.form("trade", clear_on_submit=False):
    st.subheader("One trade")
    left, right = st.columns(2)
    symbol = left.selectbox("Symbol", sorted(stocks), key="trade_symbol")
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
        st.error(f"Could not insert the trade: MongoDB is unavailable ({type(exc).__name__}).", icon="🛑")
    else:
        st.success(f"Inserted {trade.side} {trade.quantity} × {trade.symbol} @ ₹{trade.price} (id {trade_id}).",
                   icon="✅")

st.subheader("A burst of random-walk trades")
burst_symbols = st.multiselect("Symbols", sorted(stocks), default=sorted(stocks), key="burst_symbols")
count = st.slider("Trades", min_value=10, max_value=5000, value=200, step=10, key="burst_count")
volatility = st.slider("Volatility per trade (%)", 0.05, 2.0, 0.2, 0.05, key="burst_volatility")
if st.button("Insert burst", key="burst", disabled=not burst_symbols):
    walk = st.session_state.setdefault("random_walk", RandomWalk({s: stock.reference_price for s, stock in stocks.items()}))
    walk.volatility = volatility / 100
    try:
        inserted = insert_many(transactions, [walk.next_trade(walk.random.choice(burst_symbols)) for _ in range(count)])
    except PyMongoError as exc:
        st.error(f"Could not insert the burst: MongoDB is unavailable ({type(exc).__name__}).", icon="🛑")
    else:
        st.success(f"Inserted {inserted} trades across {len(burst_symbols)} symbols.", icon="✅")
