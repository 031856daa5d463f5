"""The segment processor: pure core (``processor``) and its faust adapter (``kafka_worker``)."""
