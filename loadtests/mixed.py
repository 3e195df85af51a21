"""The mixed workload: plain PostgreSQL, Redis and Kafka users beside the data layer's
patterns (agent state cache-aside, event store, message queue, lifecycle events)."""

from kafka import KafkaUser  # noqa: F401
from patterns import AgentStateUser, EventStoreUser, LifecycleUser, MessageQueueUser  # noqa: F401
from postgres import PostgresUser  # noqa: F401
from redis_users import RedisUser  # noqa: F401
