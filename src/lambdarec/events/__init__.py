"""Clickstream events on Kafka: topics, the validating publisher, the consumer and the DLQ."""
