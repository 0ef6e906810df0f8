"""The streaming queries: Spark SQL over the Kafka source, micro-batch and real-time modes, one supervisor."""
