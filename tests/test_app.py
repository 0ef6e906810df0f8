"""Every page renders with AppTest against the real stack and the running streaming job."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from streamlit.testing.v1 import AppTest

from pipeline.settings import PROJECT_ROOT
from pipeline.waits import wait_until
from ui import runtime as ui_runtime

pytestmark = pytest.mark.integration
APP = str(PROJECT_ROOT / "app.py")


@pytest.fixture(scope="module")
def app_runtime(market_job, stack, mongo_client):
    runtime = ui_runtime.AppRuntime(stack, market_job.state, market_job, mongo_client)
    ui_runtime.install(runtime)
    yield runtime
    ui_runtime.install(None)


def run_page(page: str | None = None, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.text, *at.info, *at.success, *at.error, *at.title)]
    return "\n".join(str(p) for p in parts)


def test_dashboard_lists_every_traded_stock(app_runtime, transactions, fresh_symbol):
    transactions.insert_one({"symbol": fresh_symbol, "price": 321.5, "quantity": 3})
    wait_until(lambda: fresh_symbol in app_runtime.state.snapshot().stocks, timeout=60, what="trade in state")
    at = run_page()
    assert "NSE market, live" in texts(at)
    table = at.dataframe[0].value
    row = table[table["Symbol"] == fresh_symbol].iloc[0]
    assert (row["NAV"], row["High"], row["Low"], row["Transactions"]) == (321.5, 321.5, 321.5, 1)
    assert "Last updated" in texts(at)


def test_simulator_inserts_a_valid_trade_and_explains_a_bad_one(app_runtime, fresh_symbol):
    at = run_page("pages/simulator.py")
    at.selectbox(key="trade_symbol").set_value(fresh_symbol)
    at.text_input(key="trade_price").set_value("not a price")
    at.button[0].click()  # the form's submit button
    at.run()
    assert "Price must be a number" in texts(at)

    at.text_input(key="trade_price").set_value("123.45")
    at.number_input(key="trade_quantity").set_value(7)
    at.button[0].click()
    at.run()
    assert f"7 × {fresh_symbol} @ ₹123.45" in texts(at)
    agg = wait_until(lambda: app_runtime.state.snapshot().stocks.get(fresh_symbol), timeout=60, what="form trade")
    assert (float(agg.nav), agg.volume) == (123.45, 7)


def test_simulator_burst_inserts_trades(app_runtime):
    before = app_runtime.state.snapshot().total_trades
    at = run_page("pages/simulator.py")
    at.multiselect(key="burst_symbols").set_value(["INFY", "TCS"])  # not the symbols other tests own
    at.slider(key="burst_count").set_value(50)
    at.button(key="burst").click()
    at.run()
    assert "Inserted 50 trades across 2 symbols" in texts(at)
    wait_until(lambda: app_runtime.state.snapshot().total_trades >= before + 50, timeout=60, what="burst in state")


def test_stock_page_charts_the_symbol_from_the_query_parameter(app_runtime, transactions, fresh_symbol):
    # Trade times far ahead of anything else: these decide NAV even if a burst touched the symbol.
    when = datetime.now(timezone.utc) + timedelta(hours=1)
    transactions.insert_many([{"symbol": fresh_symbol, "price": p, "quantity": 1, "trade_time": when + timedelta(seconds=p)}
                              for p in (10, 11, 12)])
    agg = wait_until(lambda: (a := app_runtime.state.snapshot().stocks.get(fresh_symbol)) and a.nav == 12 and a,
                     timeout=60, what="three trades")
    at = run_page("pages/stock.py", symbol=fresh_symbol)
    assert at.selectbox(key="stock_symbol").value == fresh_symbol
    assert len(at.get("vega_lite_chart")) == 1
    assert [m.label for m in at.metric][:4] == ["NAV", "High", "Low", "Transactions"]
    assert at.metric[0].value == "₹12.00"
    assert int(at.metric[3].value.replace(",", "")) >= agg.trades


def test_stock_page_without_trades_says_what_to_do(app_runtime):
    at = run_page("pages/stock.py", symbol="TATAMOTORS")
    if "TATAMOTORS" not in app_runtime.state.snapshot().stocks:
        assert "No trade of TATAMOTORS has arrived yet" in texts(at)
