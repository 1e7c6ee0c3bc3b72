"""The batch layer: bronze (raw Kafka records, or a dataset's) → silver (clean, deduplicated) → gold.

A session is the shop's ``session_id`` in every table
(:data:`lambdarec.features.session.SESSION_KEY`). Pure logic over pandas/Arrow lives in
:mod:`lambdarec.batch.sessions` and :mod:`lambdarec.batch.dataset`;
the Spark stages (:mod:`~lambdarec.batch.bronze`, :mod:`~lambdarec.batch.silver`,
:mod:`~lambdarec.batch.gold`) call it. ``jobs/spark/`` holds thin
entry points over these stages. Nothing here imports pyspark or feast at module import time
except the Spark stage modules themselves.
"""
