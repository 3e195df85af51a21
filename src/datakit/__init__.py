"""datakit: deploy and test a PostgreSQL, Redis and Kafka data layer as code."""

__version__ = "0.1.0"
