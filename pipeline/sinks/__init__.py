"""MongoDB and Kafka I/O around the domain: codecs, stores, ledgers, publishers and readers."""
