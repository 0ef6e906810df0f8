"""The market in plain Python: no Spark, Kafka or MongoDB imports (a unit test checks it)."""
