"""Every page with AppTest against the real stack and the running streaming job: widgets, figures,
messages, the generator and every scenario; and the banners and empty state without services."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from streamlit.testing.v1 import AppTest

from pipeline.domain.state import MarketState
from pipeline.settings import PROJECT_ROOT
from pipeline.sinks import mongo
from pipeline.waits import wait_until
from simulator.scenarios import SCENARIOS
from stack.process import free_port
from tests.oracle import OracleTick, expected_metrics, metric_values
from ui import runtime as ui_runtime

pytestmark = pytest.mark.integration
APP = str(PROJECT_ROOT / "app.py")


@pytest.fixture(scope="module")
def app_runtime(market_job, stack, mongo_client):
    runtime = ui_runtime.AppRuntime(stack, market_job.state, market_job, mongo_client)
    runtime.health.refresh()
    ui_runtime.install(runtime)
    yield runtime
    runtime.generator.stop()
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
    parts = [e.value for e in (*at.markdown, *at.caption, *at.text, *at.info, *at.success, *at.error, *at.title,
                               *at.warning)]
    return "\n".join(str(p) for p in parts)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_market_lists_every_traded_stock_with_movers_and_breadth(app_runtime, transactions, fresh_symbol):
    when = datetime.now(timezone.utc)
    transactions.insert_many([{"symbol": fresh_symbol, "price": p, "quantity": 3, "trade_time": when + timedelta(seconds=i)}
                              for i, p in enumerate((300.0, 321.5))])
    wait_until(lambda: (a := app_runtime.state.snapshot().stocks.get(fresh_symbol)) and a.trades == 2, timeout=60,
               what="trades in state")
    at = run_page()
    assert "Market" in texts(at)
    table = at.dataframe[0].value
    row = table[table["Symbol"] == fresh_symbol].iloc[0]
    assert (row["Last"], row["High"], row["Low"], row["Trades"]) == (321.5, 321.5, 300.0, 2)
    # Against the previous close: no earlier session of this stock was seen, so its reference price (100)
    assert (row["Prev close"], row["Change"], row["Change %"]) == (100.0, 221.5, 221.5)
    assert row["Freshness"] == "🟢 live" and list(row["Trend"]) == [300.0, 321.5]
    assert {"Stocks traded", "Advancers", "Decliners", "Unchanged", "Trades today", "Live"} <= set(metrics(at))
    assert int(metrics(at)["Advancers"]) >= 1
    assert "Last updated" in texts(at) and any("Top gainers" in h.value for h in at.subheader)
    gainers = at.dataframe[1].value
    assert len(gainers) >= 1 and (gainers["Change %"] > 0).all()


def test_simulator_inserts_a_valid_trade_and_explains_a_bad_one(app_runtime, fresh_symbol):
    at = run_page("pages/simulator.py")
    at.selectbox(key="trade_symbol").set_value(fresh_symbol)
    at.text_input(key="trade_price").set_value("not a price")
    at.button[0].click()  # the form's submit button
    at.run()
    assert "Price must be a number" in texts(at)
    for typed, told in (("0.00004", "rounds to ₹0 at 4 decimal places"), ("9999999.99995", "must be below ₹1,00,00,000")):
        at.text_input(key="trade_price").set_value(typed)
        at.button[0].click()
        at.run()
        assert told in texts(at) and "Inserted" not in texts(at)  # refused before MongoDB, as the pipeline would

    at.text_input(key="trade_price").set_value("123.45")
    at.number_input(key="trade_quantity").set_value(7)
    at.button[0].click()
    at.run()
    assert f"7 × {fresh_symbol} @ ₹123.45" in texts(at)
    agg = wait_until(lambda: app_runtime.state.snapshot().stocks.get(fresh_symbol), timeout=60, what="form trade")
    assert (float(agg.nav), agg.volume) == (123.45, 7)


def test_generator_runs_in_the_background_at_its_rate(app_runtime, fresh_symbol):
    at = run_page("pages/simulator.py")
    at.slider(key="gen_rate").set_value(100)
    at.slider(key="gen_duration").set_value(5)
    at.multiselect(key="gen_symbols").set_value([fresh_symbol])
    next(b for b in at.button if b.label == "Start").click()
    at.run()
    assert not at.exception
    progress = wait_until(lambda: (p := app_runtime.generator.progress()).state != "running" and p, timeout=60,
                          what="generator run")
    assert (progress.state, progress.inserted) == ("finished", 500)
    wait_until(lambda: (a := app_runtime.state.snapshot().stocks.get(fresh_symbol)) and a.trades == 500, timeout=60,
               what="500 generated trades in state")
    at.run()
    assert "finished: 500 of 500 trades across 1 symbols" in at.get("progress")[0].proto.text


def test_generator_refuses_a_plan_without_symbols(app_runtime):
    at = run_page("pages/simulator.py")
    at.multiselect(key="gen_symbols").set_value([])
    next(b for b in at.button if b.label == "Start").click()
    at.run()
    assert "Choose at least one symbol." in texts(at)


def newest_id(transactions):
    newest = transactions.find_one({}, sort=[("_id", -1)], projection={"_id": 1})
    return newest["_id"] if newest else None


def is_valid_trade(doc: dict, listed: set[str]) -> bool:
    """Plain Python, from docs/semantics.md (not the app's code): what the pipeline counts as a trade."""
    price, quantity = doc.get("price"), doc.get("quantity", 1)
    return (doc.get("symbol") in listed and isinstance(price, int | float) and price > 0
            and isinstance(quantity, int) and quantity > 0 and doc.get("side") in (None, "buy", "sell")
            and isinstance(doc.get("trade_time"), datetime))


def scenario_oracle(documents: list[dict], symbol: str, listed: set[str], lateness_s: int) -> dict:
    """What the dashboard must show for ``symbol`` after ``documents`` (in insertion order, the order one
    symbol's change events are processed in): every registry metric, late ticks, rejected and set aside."""
    valid = [d for d in documents if is_valid_trade(d, listed)]
    latest: datetime | None = None
    late = 0
    for doc in (d for d in valid if d["symbol"] == symbol):
        when = doc["trade_time"]
        if latest is not None and when < latest - timedelta(seconds=lateness_s):
            late += 1
        latest = max(latest or when, when)
    ticks = [OracleTick(str(d["_id"]), d["symbol"], Decimal(repr(d["price"])), d.get("quantity", 1),
                        d["trade_time"].replace(tzinfo=timezone.utc), d.get("side")) for d in valid if d["symbol"] == symbol]
    rejected = [d for d in documents if not is_valid_trade(d, listed)]
    return {"metrics": expected_metrics(ticks)[symbol], "late": late,
            "rejected": sum(d.get("symbol") == symbol for d in rejected), "set_aside": len(rejected) + late}


def set_aside_total(snapshot) -> int:
    return sum(snapshot.rejected_by_reason.values()) + sum(snapshot.late_by_symbol.values())


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_each_scenario_shows_what_it_must(app_runtime, stack, mongo_client, transactions, fresh_symbol, scenario):
    """The page's verdict, then a check that does not trust the app's own expectations: a follow-up trade of
    the same symbol (same partition, after everything the scenario wrote, redelivered copies included) is
    counted, and the figures must equal a plain-Python oracle over the documents in MongoDB."""
    after_id, aside_before = newest_id(transactions), set_aside_total(app_runtime.state.snapshot())
    at = run_page("pages/simulator.py")
    at.selectbox(key="scenario").set_value(scenario)
    at.selectbox(key="scenario_symbol").set_value(fresh_symbol)
    at.button(key="scenario_run").click()
    at.run()
    assert not at.error, texts(at)

    def verdict() -> bool:
        at.run()  # AppTest does not rerun fragments by itself
        return "shows exactly what the scenario must produce" in texts(at)

    wait_until(verdict, timeout=60, interval=0.5, what=f"scenario {scenario}",
               describe=lambda: at.dataframe[-1].value.to_string())

    follow_up = {"symbol": fresh_symbol, "side": "sell", "price": 4321.5, "quantity": 3,
                 "trade_time": datetime.now(timezone.utc) + timedelta(seconds=1)}
    transactions.insert_one(follow_up)
    wait_until(lambda: (a := app_runtime.state.snapshot().stocks.get(fresh_symbol)) and a.nav == Decimal("4321.5"),
               timeout=60, what="the follow-up trade counted")
    documents = list(transactions.find({"_id": {"$gt": after_id}} if after_id else {}).sort("_id", 1))
    listed = {d["_id"] for d in mongo_client[stack.database]["stock"].find({}, {"_id": 1})}
    expected = scenario_oracle(documents, fresh_symbol, listed, stack.candle_lateness_s)
    snapshot = app_runtime.state.snapshot()
    assert metric_values(snapshot.stocks[fresh_symbol]) == expected["metrics"]
    assert (snapshot.late_by_symbol.get(fresh_symbol, 0), snapshot.rejected_by_symbol.get(fresh_symbol, 0)) == \
        (expected["late"], expected["rejected"])
    assert set_aside_total(snapshot) - aside_before == expected["set_aside"]
    # The verdict is not latched: the follow-up moved the figures, so the page no longer claims agreement.
    at.run()
    assert "shows exactly what the scenario must produce" not in texts(at)


def test_stock_page_charts_candles_and_lists_trades(app_runtime, transactions, fresh_symbol):
    # Trade times in the past (the pipeline refuses those ahead of the database clock), a second apart.
    when = datetime.now(timezone.utc) - timedelta(seconds=30)
    ids = transactions.insert_many([{"symbol": fresh_symbol, "price": p, "quantity": 1, "trade_time": when + timedelta(seconds=p)}
                                    for p in (10, 11, 12)]).inserted_ids
    agg = wait_until(lambda: (a := app_runtime.state.snapshot().stocks.get(fresh_symbol)) and a.nav == 12 and a,
                     timeout=60, what="three trades")
    at = run_page("pages/stock.py", symbol=fresh_symbol.lower())
    assert at.selectbox(key="stock_symbol").value == fresh_symbol
    assert len(at.get("vega_lite_chart")) == 1
    shown = metrics(at)
    assert list(shown) == ["Last", "High", "Low", "Prev close", "VWAP", "Volume", "Trades", "Set aside"]
    assert (shown["Last"], shown["High"], shown["Low"], shown["VWAP"]) == ("₹12.00", "₹12.00", "₹10.00", "₹11.00")
    assert int(shown["Trades"].replace(",", "")) >= agg.trades
    trades = at.dataframe[0].value
    assert list(trades["Trade id"][:3]) == [str(i) for i in reversed(ids)]
    at.radio(key="candle_interval").set_value("5m")
    at.run()
    assert not at.exception and len(at.get("vega_lite_chart")) == 1


def test_stock_page_warns_about_an_unlisted_symbol_in_the_link(app_runtime):
    at = run_page("pages/stock.py", symbol="<script>alert(1)</script>")
    assert "not a listed stock" in texts(at)
    assert "<script>" not in texts(at) and at.selectbox(key="stock_symbol").value == "ASIANPAINT"


def test_pipeline_page_shows_services_freshness_and_set_aside(app_runtime, transactions, fresh_symbol):
    transactions.insert_many([{"symbol": fresh_symbol, "price": 5.0, "quantity": 1},
                              {"symbol": fresh_symbol, "price": -5.0, "quantity": 1}])
    wait_until(lambda: app_runtime.state.snapshot().rejected_by_symbol.get(fresh_symbol), timeout=60,
               what="the rejected trade")
    app_runtime.health.refresh()
    at = run_page("pages/pipeline.py")
    shown = texts(at)
    for service in ("MongoDB", "Kafka", "CDC relay", "Spark query", "Archive"):
        assert f"🟢 **{service}**" in shown, shown
    values = metrics(at)
    assert values["Freshness p50"] != "–" and values["Freshness p99"] != "–"
    assert values["Kafka lag"] != "–" and int(values["Rejected (dead letter)"].replace(",", "")) >= 1
    reasons = at.dataframe[0].value
    assert "invalid_price" in set(reasons["Reason"])
    assert len(at.get("vega_lite_chart")) == 1


def test_without_services_every_page_says_what_is_wrong_and_what_to_do(stack, tmp_path):
    dead = stack.with_changes(local_mongo_port=free_port(), mongo_uri=None, kafka_bootstrap_servers=None,
                              local_kafka_port=free_port(), data_dir=tmp_path)
    runtime = ui_runtime.AppRuntime(dead, MarketState(), None, mongo.client(dead, timeout_ms=300))
    runtime.health.refresh()
    ui_runtime.install(runtime)
    try:
        for page in (None, "pages/stock.py", "pages/pipeline.py"):
            at = run_page(page)
            shown = texts(at)
            assert "mongodb://" not in shown and "Traceback" not in shown
            if page != "pages/pipeline.py":
                assert "**MongoDB** is unavailable" in shown and "**Kafka** is unavailable" in shown
                assert "**CDC relay** is unavailable" in shown and "python -m stack up" in shown
        assert "No trade has arrived yet" in texts(run_page())
        at = run_page("pages/simulator.py")
        at.text_input(key="trade_price").set_value("10")
        at.button[0].click()
        at.run()
        assert "MongoDB is unavailable" in texts(at)
    finally:
        ui_runtime.install(None)
        runtime.stop()
