"""Where a Kafka node's code comes from and how its JVM is started.

The Kafka prefix tools/build-kafka makes (and, as root, a copy of it that the `kafka` user
can read), the java binary, the classpath, the JVM flags, and the class-data-sharing
(AppCDS) archives that tools/kafka/cds.py builds into the prefix at bootstrap
(toolchain/kafka_cds.py says where): one of a broker's start and first work, one of
kafka-storage format.

A JVM maps an archive with `-Xshare:auto`: one that is missing, of another JVM build or
for other jars (an archive names its jars by path: it serves the prefix, or the node copy,
it was made from) is ignored and the node starts as before, only slower. A truncated archive
is the one thing that crashes a JVM (SIGBUS, even with auto), so archives are only ever
put in place whole, by rename, and never rewritten where they lie.

DATAKIT_KAFKA_CDS=off starts JVMs without these archives (the JDK's own one stays): for a
benchmark's "before", or to rule an archive out when a node misbehaves.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from pathlib import Path

from datakit.errors import DatakitError
from datakit.nodes.process import RunAs
from datakit.paths import PROJECT_DIR, cache_dir, data_root
from datakit.toolchain.kafka_cds import archive, java_binary

# For 3 brokers on 2 cores (see the how-to, section 8): small fixed thread counts.
BROKER_FLAGS = [
    "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent", "-XX:ParallelGCThreads=1", "-XX:ConcGCThreads=1",
    "-XX:+ExitOnOutOfMemoryError", "-XX:+PerfDisableSharedMem", "-Djava.awt.headless=true",
]
FORMAT_FLAGS = ["-XX:+PerfDisableSharedMem"]
# A heap this small is a laptop's or CI's local stack: C1 only. Measured on 2 shared cores
# (tools/kafka/start_bench.py, tools/kafka/throughput.py): a node's CPU to listening 2.7 ->
# 1.5 s, and its brokers' CPU per message about halved, with acks=all produce faster, even
# after 1.5M messages, since three brokers' C2 compiler threads no longer take the cores
# from the brokers. Consume throughput after a long warm-up moved both ways (137-328k/s
# against 171-192k/s), so larger heaps keep the full JIT.
SMALL_HEAP_MB = 1024
SMALL_HEAP_FLAGS = ["-XX:TieredStopAtLevel=1"]
LAUNCHER = "datakit.kafka.FormatThenServe"


# ---------------------------------------------------------------- the prefix

def default_home() -> str:
    """The Kafka prefix tools/bootstrap builds: <cache>/kafka-<KAFKA_VERSION>."""
    versions = PROJECT_DIR / "tools" / "versions.env"
    match = re.search(r"^KAFKA_VERSION=(\S+)", versions.read_text(), re.M)
    if not match:
        raise DatakitError(f"KAFKA_VERSION missing from {versions}")
    return str(cache_dir() / f"kafka-{match.group(1)}")


def home_for(props: dict) -> Path:
    """Kafka's prefix as the node's account can read it (see _reachable_copy)."""
    home = Path(props.get("home") or default_home())
    if not any((home / "libs").glob("kafka_*.jar")):
        raise DatakitError(f"Kafka is not built in {home}: run tools/bootstrap "
                           f"(or tools/build-kafka {home})")
    account = RunAs.service(props.get("run_as") or "kafka")
    if _reachable(home / "libs", account):
        return home
    return _reachable_copy(home, account)


def _reachable(path: Path, account: RunAs) -> bool:
    """Whether `account` may traverse every parent of `path` and list `path`."""
    path = path.resolve()
    for part in [*reversed(path.parents), path]:
        st = part.stat()
        if st.st_uid == account.uid:
            bits = st.st_mode >> 6
        elif st.st_gid == account.gid:
            bits = st.st_mode >> 3
        else:
            bits = st.st_mode
        need = 0o5 if part == path else 0o1
        if bits & need != need:
            return False
    return True


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _reachable_copy(home: Path, account: RunAs) -> Path:
    """A copy of `home` that `account` can read, made once per build of it.

    As root the tool cache lives under /root (mode 0700), which the `kafka` user cannot
    enter; its nodes then run from <data root>/tools/<name>-<build stamp>, hard-linked
    where possible. CDS archives built after the copy are added to it (see _sync_archives).
    """
    tools = data_root() / "tools"
    tools.mkdir(parents=True, exist_ok=True)
    tools.chmod(0o755)
    stamp = home / ".datakit-build"
    want = stamp.read_text().strip() if stamp.exists() else "unstamped"
    # One copy per build: running JVMs open jars lazily, so a copy in use is never replaced.
    target = tools / f"{home.name}-{want}"
    with open(tools / f".{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = target / ".datakit-build"
        if not (done.exists() and done.read_text() == want):
            fresh = tools / f".{home.name}.new"
            shutil.rmtree(fresh, ignore_errors=True)
            shutil.copytree(home, fresh, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(
                "libs.new", "libs.old", "cds"))
            for path in [fresh, *fresh.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
            (fresh / ".datakit-build").write_text(want)
            shutil.rmtree(target, ignore_errors=True)
            fresh.rename(target)
        _sync_archives(home, target)
    if not _reachable(target / "libs", account):
        raise DatakitError(f"user {account.name} cannot read {target}: make its parent "
                           "directories world-executable or set DATAKIT_DATA elsewhere")
    return target


def _sync_archives(home: Path, target: Path) -> None:
    """Give the copy every archive of `home` it lacks or holds another version of, and
    drop those `home` no longer has. Each lands whole by rename, and a JVM that maps an
    old or removed file keeps its own inode.
    """
    for src in (home / "cds").glob("*/*.jsa"):
        dst = target / "cds" / src.parent.name / src.name
        if dst.exists() and dst.stat().st_ino == src.stat().st_ino:
            continue
        if dst.exists() and dst.stat().st_size == src.stat().st_size and \
                dst.stat().st_mtime == src.stat().st_mtime:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        for folder in (dst.parent.parent, dst.parent):
            folder.chmod(0o755)
        tmp = dst.with_suffix(".jsa.new")
        tmp.unlink(missing_ok=True)
        _link_or_copy(str(src), str(tmp))
        if tmp.stat().st_size != src.stat().st_size:  # a short copy (disk full) is dropped
            tmp.unlink()
            continue
        tmp.chmod(0o644)
        tmp.replace(dst)
    for stale in (target / "cds").glob("*"):  # of an earlier JVM, gone from `home` too
        if not (home / "cds" / stale.name).exists():
            shutil.rmtree(stale, ignore_errors=True)


# ---------------------------------------------------------------- the JVM

def java() -> str:
    found = java_binary()
    if not found:
        raise DatakitError("java not found: install OpenJDK 17 (tools/bootstrap does)")
    return found


def launcher(home: Path) -> Path | None:
    """datakit's node launcher in the Kafka build (tools/kafka/FormatThenServe.java), or
    None in a build made before it."""
    jar = home / "datakit" / "kafka-node.jar"
    return jar if jar.exists() else None


def classpath(home: Path) -> str:
    """Every jar of the prefix, sorted, then the launcher: the same list at every start,
    which an archive needs (it names its jars by path, in order; `libs/*` would follow
    the directory's order)."""
    jars = sorted((home / "libs").glob("*.jar"))
    return ":".join(str(p) for p in [*jars, *filter(None, [launcher(home)])])


def build_stamp(home: Path) -> str:
    """The Kafka build's stamp (tools/build-kafka writes it; a node's copy keeps it)."""
    try:
        return (home / ".datakit-build").read_text().strip() or "unstamped"
    except OSError:
        return "unstamped"


def command(home: Path, main: str, args: list[str], *, role: str, logs: Path,
            memory: list[str], extra: list[str] | None = None) -> list[str]:
    """A java command line for `main` of the Kafka in `home`, with the `role` archive if
    there is one (not while one is being made: `extra` with -XX:ArchiveClassesAtExit)."""
    java_bin = java()
    extra = list(extra or [])
    share: list[str] = []
    dumping = any(flag.startswith("-XX:ArchiveClassesAtExit") for flag in extra)
    wanted = os.environ.get("DATAKIT_KAFKA_CDS", "on").lower() not in ("off", "0", "no")
    if wanted and not dumping and (found := archive(home, role, java_bin)):
        share = [f"-XX:SharedArchiveFile={found}", "-Xshare:auto"]
    flags = BROKER_FLAGS if role == "broker" else FORMAT_FLAGS
    return [java_bin, *memory, *flags, *share, *extra,
            f"-Dlog4j2.configurationFile={home / 'config' / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={logs}", "-Dkafka.console.level=WARN",
            "-cp", classpath(home), main, *args]
