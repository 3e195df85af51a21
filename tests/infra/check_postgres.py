"""PostgreSQL: one primary and the rest in recovery, each replica streaming from the live
primary through an active slot within the lag baseline, settings as configured, SCRAM and
no trust on TCP, a password required, WAL archiving when configured, buffer hits and
connections against thresholds."""

from __future__ import annotations

import psycopg
import pytest

from datakit.nodes.postgres_client import in_recovery
from datakit.stack.schema import Node
from datakit.topology import parse_size
from datakit.verify import Mismatch

HIT_RATIO_MIN = 0.95  # the data layer's design documents' thresholds: reported, not enforced
CONNECTIONS_MAX_SHARE = 0.90
NO_PASSFILE = "/nonexistent/datakit-verify-no-pgpass"  # libpq skips a missing one silently


def _is_primary(node: Node, primary: Node | None) -> bool:
    return primary is not None and primary.name == node.name


def test_one_primary(nodes_of, pg_connect, checker):
    def probe() -> list[str]:
        found = []
        for node in nodes_of("postgres"):
            try:
                with pg_connect(node) as conn:
                    if not in_recovery(conn):
                        found.append(node.name)
            except psycopg.Error:
                continue
        return found

    checker.expect("exactly one primary", "postgres", "1 primary", probe,
                   ok=lambda found: len(found) == 1)


def test_recovery_state(pg_node, pg_primary, pg_connect, checker):
    want = "primary (not in recovery)" if _is_primary(pg_node, pg_primary) \
        else "replica (in recovery)"

    def probe() -> str:
        with pg_connect(pg_node) as conn:
            standby = in_recovery(conn)
        return "replica (in recovery)" if standby else "primary (not in recovery)"

    checker.expect("recovery state", pg_node.name, want, probe)


def _by_port(nodes: list[Node]) -> dict[int, str]:
    return {n.port: n.name for n in nodes}


def _replica_slot(conn) -> str:
    return conn.execute("show primary_slot_name").fetchone()[0]


def test_streams_from_primary(pg_node, pg_primary, nodes_of, pg_connect, checker):
    if _is_primary(pg_node, pg_primary):
        pytest.skip(f"{pg_node.name} is the primary")
    if pg_primary is None:
        pytest.fail(f"{pg_node.name}: streams from the primary: no live primary", False)
    names = _by_port(nodes_of("postgres"))
    want = f"streaming from {pg_primary.name} via an active slot"

    def probe() -> str:
        with pg_connect(pg_node) as conn:
            slot = _replica_slot(conn)
            row = conn.execute("select status, sender_port from pg_stat_wal_receiver"
                               ).fetchone()
        if not slot:
            raise Mismatch("no primary_slot_name set")
        if row is None:
            raise Mismatch(f"no WAL receiver (slot {slot})")
        sender = names.get(int(row[1] or 0), f"port {row[1]}")
        with pg_connect(pg_primary) as conn:
            active = conn.execute("select active from pg_replication_slots "
                                  "where slot_name = %s", [slot]).fetchone()
        state = "an active slot" if active and active[0] else \
            f"slot {slot} {'inactive' if active else 'missing on the primary'}"
        return f"{row[0]} from {sender} via {state}"

    checker.expect("streams from the primary", pg_node.name, want, probe)


def test_replay_lag(pg_node, pg_primary, pg_connect, topology, checker):
    if _is_primary(pg_node, pg_primary):
        pytest.skip(f"{pg_node.name} is the primary")
    if pg_primary is None:
        pytest.fail(f"{pg_node.name}: replay lag: no live primary", False)
    limit = int(topology.baselines.replica_lag_max_bytes)

    def probe() -> int:
        with pg_connect(pg_node) as conn:
            slot = _replica_slot(conn)
        with pg_connect(pg_primary) as conn:
            row = conn.execute(
                "select pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint "
                "from pg_replication_slots s join pg_stat_replication r on r.pid = s.active_pid "
                "where s.slot_name = %s", [slot]).fetchone()
        if row is None or row[0] is None:
            raise Mismatch(f"not replicating from {pg_primary.name}")
        return int(row[0])

    checker.expect("replay lag (bytes)", pg_node.name, f"<= {limit}", probe,
                   ok=lambda lag: lag <= limit)


def _same(configured: str, shown: str) -> bool:
    a, b = configured.strip().lower(), shown.strip().lower()
    if a == b:
        return True
    truth = {"on": True, "true": True, "yes": True, "1": True,
             "off": False, "false": False, "no": False, "0": False}
    if a in truth and b in truth:
        return truth[a] == truth[b]
    for convert in (float, parse_size):
        try:
            return convert(a) == convert(b)
        except Exception:  # noqa: BLE001 - not a value of this kind
            continue
    return False


def test_settings_as_configured(pg_node, pg_primary, pg_connect, topology, checker):
    # The quorum (synchronous_standby_names) is Patroni's: check_patroni.py checks it.
    want = dict(topology.postgres.settings.gucs())

    def probe() -> str:
        with pg_connect(pg_node) as conn:
            rows = conn.execute("select name, current_setting(name, true) "
                                "from unnest(%s::text[]) name", [list(want)]).fetchall()
        shown = {name: value for name, value in rows}
        wrong = [f"{k} = {shown.get(k)!s} (configured {v})" for k, v in want.items()
                 if shown.get(k) is None or not _same(v, shown[k])]
        return "; ".join(wrong) or "all as configured"

    checker.expect("settings as configured", pg_node.name,
                   f"all as configured ({len(want)} settings)", probe,
                   ok=lambda found: found == "all as configured")


def test_hba_scram_no_trust(pg_node, pg_connect, checker):
    def probe() -> str:
        with pg_connect(pg_node) as conn:
            rows = conn.execute("select line_number, type, address, auth_method, error "
                                "from pg_hba_file_rules").fetchall()
        bad = []
        for line, kind, address, method, error in rows:
            if error:
                bad.append(f"line {line}: {error}")
            elif kind.startswith("host") and method != "scram-sha-256":
                bad.append(f"line {line}: {kind} {address or ''} {method}".replace("  ", " "))
        if not any(k.startswith("host") and m == "scram-sha-256" for _, k, _, m, _ in rows):
            bad.append("no TCP rule uses scram-sha-256")
        return "; ".join(bad) or "scram on every TCP rule, no trust"

    checker.expect("pg_hba: scram on TCP, no trust", pg_node.name,
                   "scram on every TCP rule, no trust", probe)


def test_password_required(pg_node, outputs, checker):
    pg = outputs.endpoints.postgres

    def probe() -> str:
        try:
            conn = psycopg.connect(host=pg_node.host, port=pg_node.port,
                                   dbname=pg.database, user=pg.app_user,
                                   passfile=NO_PASSFILE, connect_timeout=2)
        except psycopg.OperationalError as exc:
            text = str(exc)
            if "password" in text:
                return "refused"
            raise  # not answering at all is not a refusal: try again
        conn.close()
        return f"accepted {pg.app_user} without a password"

    checker.expect("connection without password refused", pg_node.name, "refused", probe)


def test_wal_archiving(pg_node, pg_primary, pg_connect, topology, checker):
    if not topology.postgres.archive:
        pytest.skip("postgres.archive is off")
    if not _is_primary(pg_node, pg_primary):
        pytest.skip(f"{pg_node.name} is a replica (only the primary archives)")

    def probe() -> str:
        with pg_connect(pg_node) as conn:
            mode, failing, last = conn.execute(
                "select current_setting('archive_mode'), last_failed_time is not null and "
                "last_failed_time >= coalesce(last_archived_time, '-infinity'), last_failed_wal "
                "from pg_stat_archiver").fetchone()
        if mode != "on":
            return f"archive_mode {mode}"
        return f"failing since {last}" if failing else "archiving"

    checker.expect("WAL archiving", pg_node.name, "archiving", probe)


def test_buffer_hit_ratio(pg_node, pg_connect, checker):
    def probe() -> float:
        with pg_connect(pg_node) as conn:
            hit, read = conn.execute("select sum(blks_hit), sum(blks_read) "
                                     "from pg_stat_database").fetchone()
        total = int(hit or 0) + int(read or 0)
        return round(int(hit or 0) / total, 4) if total else 1.0

    checker.expect("buffer hit ratio", pg_node.name, f">= {HIT_RATIO_MIN}", probe,
                   ok=lambda ratio: ratio >= HIT_RATIO_MIN, warn=True)


def test_connections_below_max(pg_node, pg_connect, checker):
    def probe() -> str:
        with pg_connect(pg_node) as conn:
            used, most = conn.execute(
                "select count(*) filter (where backend_type = 'client backend'), "
                "current_setting('max_connections')::int from pg_stat_activity").fetchone()
        return f"{used} of {most}"

    def ok(found: str) -> bool:
        used, most = (int(x) for x in found.split(" of "))
        return used < CONNECTIONS_MAX_SHARE * most

    checker.expect("client connections", pg_node.name,
                   f"< {CONNECTIONS_MAX_SHARE:.0%} of max_connections", probe, ok=ok, warn=True)
