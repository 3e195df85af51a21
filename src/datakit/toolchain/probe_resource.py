"""A tiny Python dynamic resource (a file with given content) that proves the engine path.

Used by the engine tests and `datakit doctor --engine`: `up` creates the file, `destroy`
removes it, so both directions of the dynamic-provider protocol run for real.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult


class ProbeFileProvider(ResourceProvider):
    def create(self, props):
        path = Path(props["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(props["content"])
        return CreateResult(id_=str(path), outs={**props, "size": len(props["content"])})

    def diff(self, _id, olds, news):
        replaces = ["path"] if olds.get("path") != news.get("path") else []
        changed = bool(replaces) or olds.get("content") != news.get("content")
        return DiffResult(changes=changed, replaces=replaces, delete_before_replace=True)

    def update(self, _id, _olds, news):
        Path(news["path"]).write_text(news["content"])
        return UpdateResult(outs={**news, "size": len(news["content"])})

    def delete(self, _id, props):
        Path(props["path"]).unlink(missing_ok=True)


class ProbeFile(Resource):
    size: pulumi.Output[int]

    def __init__(self, name: str, path: str, content: str, opts=None):
        super().__init__(ProbeFileProvider(), name,
                         {"path": path, "content": content, "size": None}, opts)
