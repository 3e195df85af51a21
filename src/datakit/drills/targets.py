"""What drill writers write to: one small class per service, each with `write(id)`
(returns on a durable acknowledgement), `reset()` (drop the connection after an error)
and `read_ids()` (an independent read-back on a fresh connection).

PostgreSQL: one row per id in `datakit_drill.writes`, through the stack's multi-host
write DSN (`target_session_attrs=read-write`), autocommit: the commit is the ack.
Redis: one hash field per id, through Sentinel discovery, then `WAIT 1` when durable
(an ack is a write that reached a replica; WAIT answering 0 is an unknown outcome).
Redis Cluster: the same in one key, through `RedisCluster`, with WAIT on the connection
of the node that owns the key. (Kafka's producer writes asynchronously: kafka_ops.py.)
"""

from __future__ import annotations

import psycopg

from datakit.drills.writer import NotSent
from datakit.nodes import tls
from datakit.stack.schema import StackOutputs

SCHEMA = "datakit_drill"


class PostgresTarget:
    def __init__(self, outputs: StackOutputs, run: str):
        self.dsn = outputs.endpoints.postgres.write_dsn
        self.run = run
        self.conn: psycopg.Connection | None = None
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"create schema if not exists {SCHEMA}")
            conn.execute(f"create table if not exists {SCHEMA}.writes (run text not null, "
                         "id bigint not null, at timestamptz not null default now(), "
                         "primary key (run, id))")

    def _connect(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            try:
                self.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=2,
                                            application_name="datakit-drill")
            except psycopg.OperationalError as exc:
                raise NotSent(str(exc)) from None
        return self.conn

    def write(self, op_id: int) -> None:
        conn = self._connect()
        conn.execute(f"insert into {SCHEMA}.writes (run, id) values (%s, %s)",
                     [self.run, op_id])

    def reset(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def read_ids(self) -> set[int]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(f"select id from {SCHEMA}.writes where run = %s",
                                [self.run]).fetchall()
        return {r[0] for r in rows}


def sentinel_client(outputs: StackOutputs):
    from redis.sentinel import Sentinel

    rd, secrets = outputs.endpoints.redis, outputs.need_secrets().redis
    hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in rd.sentinels]
    ssl = tls.redis(outputs.tls_for("sentinel"))
    sentinel = Sentinel(hosts, sentinel_kwargs={"password": secrets.sentinel,
                                                "socket_timeout": 0.5, **ssl},
                        password=secrets.default, socket_timeout=1.0,
                        socket_connect_timeout=0.5, **ssl)
    return sentinel, rd.master_name


class RedisTarget:
    def __init__(self, outputs: StackOutputs, run: str, *, durable: bool = True):
        self.sentinel, self.master_name = sentinel_client(outputs)
        self.key = f"datakit:drill:{run}"
        self.durable = durable
        self.client = self.sentinel.master_for(self.master_name, decode_responses=True)

    def write(self, op_id: int) -> None:
        import redis

        try:
            if not self.durable:
                self.client.hset(self.key, str(op_id), "1")
                return
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(self.key, str(op_id), "1")
            pipe.execute_command("WAIT", 1, 1000)
            _, replicas = pipe.execute()
        except redis.sentinel.MasterNotFoundError as exc:
            raise NotSent(str(exc)) from None
        except redis.ConnectionError as exc:
            if "connecting to" in str(exc):  # refused before anything was sent
                raise NotSent(str(exc)) from None
            raise
        if int(replicas) < 1:
            raise TimeoutError("WAIT 1: no replica acknowledged within 1 s")

    def reset(self) -> None:
        self.client.connection_pool.disconnect()

    def read_ids(self) -> set[int]:
        master = self.sentinel.master_for(self.master_name, decode_responses=True)
        try:
            return {int(k) for k in master.hkeys(self.key)}
        finally:
            master.connection_pool.disconnect()


def cluster_client(outputs: StackOutputs):
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.retry import Retry

    seeds = [ClusterNode(n.host, n.port) for n in outputs.of("redis")]
    return RedisCluster(startup_nodes=seeds, password=outputs.need_secrets().redis.default,
                        decode_responses=True, socket_timeout=1.0,
                        socket_connect_timeout=0.5, **tls.redis(outputs.tls_for("redis")),
                        retry=Retry(NoBackoff(), 0))  # the writer records each failure


class RedisClusterTarget:
    """One hash field per id, in one key (of the victim's slots), through RedisCluster.
    `MOVED`/`CLUSTERDOWN`/`NOREPLICAS` refusals and refused connections are known
    failures (nothing applied); the client asks for the slot map again after each error."""

    def __init__(self, outputs: StackOutputs, key: str, *, durable: bool = True):
        self.outputs, self.key, self.durable = outputs, key, durable
        self.client = cluster_client(outputs)

    def write(self, op_id: int) -> None:
        import redis
        from redis.exceptions import ClusterDownError, MovedError, TryAgainError

        try:
            if not self.durable:
                self.client.hset(self.key, str(op_id), "1")
                return
            # WAIT counts its own connection's writes only: both go on the owner's one
            node = self.client.get_node_from_key(self.key)
            conn = self.client.get_redis_connection(node)
            pipe = conn.pipeline(transaction=False)
            pipe.hset(self.key, str(op_id), "1")
            pipe.execute_command("WAIT", 1, 1000)
            _, replicas = pipe.execute()
        except (MovedError, ClusterDownError, TryAgainError) as exc:
            raise NotSent(str(exc)) from None  # refused: nothing applied
        except redis.ResponseError as exc:
            said = str(exc).rsplit("caused error: ", 1)[-1]  # a pipeline names its command
            if said.startswith(("NOREPLICAS", "MOVED", "CLUSTERDOWN", "TRYAGAIN",
                                    "READONLY")):
                raise NotSent(str(exc)) from None
            raise
        except redis.ConnectionError as exc:
            if "connecting to" in str(exc) or "Connection refused" in str(exc):
                raise NotSent(str(exc)) from None
            raise
        if int(replicas) < 1:
            raise TimeoutError("WAIT 1: no replica acknowledged within 1 s")

    def reset(self) -> None:
        """After an error: drop connections and ask the cluster for its slot map again."""
        try:
            self.client.close()
        finally:
            self.client = cluster_client(self.outputs)

    def close(self) -> None:
        self.client.close()

    def read_ids(self) -> set[int]:
        client = cluster_client(self.outputs)
        try:
            return {int(k) for k in client.hkeys(self.key)}
        finally:
            client.close()
