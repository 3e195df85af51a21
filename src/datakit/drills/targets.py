"""What drill writers write to: one small class per service, each with `write(id)`
(returns on a durable acknowledgement), `reset()` (drop the connection after an error)
and `read_ids()` (an independent read-back on a fresh connection).

PostgreSQL: one row per id in `datakit_drill.writes`, through the stack's multi-host
write DSN (`target_session_attrs=read-write`), autocommit: the commit is the ack.
Redis: one hash field per id, through Sentinel discovery, then `WAIT 1` when durable
(an ack is a write that reached a replica; WAIT answering 0 is an unknown outcome).
"""

from __future__ import annotations

import psycopg

from datakit.drills.writer import NotSent

SCHEMA = "datakit_drill"


class PostgresTarget:
    def __init__(self, outputs: dict, run: str):
        self.dsn = outputs["endpoints"]["postgres"]["write_dsn"]
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


def sentinel_client(outputs: dict):
    from redis.sentinel import Sentinel

    rd, secrets = outputs["endpoints"]["redis"], outputs["secrets"]["redis"]
    hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in rd["sentinels"]]
    sentinel = Sentinel(hosts, sentinel_kwargs={"password": secrets["sentinel"],
                                                "socket_timeout": 0.5},
                        password=secrets["default"], socket_timeout=1.0,
                        socket_connect_timeout=0.5)
    return sentinel, rd["master_name"]


class RedisTarget:
    def __init__(self, outputs: dict, run: str, *, durable: bool = True):
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
