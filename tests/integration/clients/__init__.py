"""Helpers that drive real Kafka clients (Java kafka-clients, kcat) against a broker, for integration tests."""
