"""The archive_command both substrates give PostgreSQL when `postgres.archive` is on."""

from __future__ import annotations


def archive_command(folder: str) -> str:
    """Copy a finished WAL segment into `folder` (a shell word) so that a reader never sees
    half a segment and a crash never leaves one: copy to a temporary name, flush it, then
    rename. A segment already archived is never overwritten; PostgreSQL retries a failure."""
    return (f"test ! -f {folder}/%f && cp %p {folder}/%f.part && sync {folder}/%f.part "
            f"&& mv {folder}/%f.part {folder}/%f")
