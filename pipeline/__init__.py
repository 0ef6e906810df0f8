"""The data pipeline, in rooms by what they may touch (each imports only the rooms listed before it):

- ``settings``, ``waits``: the one settings object and deadline waits (standard library only);
- ``domain``: the market's meaning in plain Python: the metric registry, aggregates, candles, MarketState;
- ``sinks``: MongoDB and Kafka I/O: codecs, stores, ledgers, publishers, readers of what others wrote;
- ``spark``: the streaming queries (parse, per-batch summary, micro-batch and real-time modes, supervisor);
- ``services``: processes of their own (CDC relay, archive) and the status files they share.
"""
