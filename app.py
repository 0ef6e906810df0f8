"""Real-time NSE stock market dashboard: ``streamlit run app.py``.

Trades inserted into MongoDB reach this app through CDC, Kafka and a Spark Structured Streaming
query that runs inside this process (started once, see ``ui/runtime.py``).
"""

import sys

import streamlit as st

from ui import live, page_switch, push
from ui.runtime import lifespan

if __name__ == "__main__":  # a run of the script: Streamlit (and AppTest) run it as __main__
    st.set_page_config(page_title="Stock market dashboard", page_icon="📈", layout="wide")
    navigation = st.navigation(
        [
            st.Page("pages/market.py", title="Market", icon="📊", default=True),
            st.Page("pages/stock.py", title="Stock", icon="📈", url_path="stock"),
            st.Page("pages/simulator.py", title="Simulator", icon="🎲", url_path="simulator"),
            st.Page("pages/pipeline.py", title="Pipeline", icon="🩺", url_path="pipeline"),
        ]
    )
    navigation.run()
else:
    # Imported by `streamlit run app.py`, which finds this st.App and serves it: this same script, with
    # the routes that tell open pages when the market changed (ui/live.py) and push the Stock page's
    # figures (ui/push.py) beside Streamlit's own.
    # The lifespan stops the query, then the local stack this app started, when the server shuts down
    # (also on SIGTERM, which ends uvicorn's process before atexit handlers would run).
    # The app's Python threads share one interpreter lock: the live feed applies ~1,000 ticks a second and the
    # record's batches arrive while the pushes wait for it to build and send each view. Handing it over every
    # 1 ms instead of 5 ms put pushed figures on screen sooner (docs/benchmarks.md, "Pushed movers, and the
    # interpreter lock handed over sooner").
    sys.setswitchinterval(0.001)
    page_switch.install()
    page_switch.navigation_only()
    app = st.App("app.py", routes=[*live.routes(), *push.routes()], lifespan=lifespan)
