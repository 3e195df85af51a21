"""`pulumi-resource-pulumi-python`: the plugin the engine starts for Python dynamic resources.

Upstream ships it as a shell launcher around `python -m pulumi.dynamic` (the server itself is
in the SDK wheel). As a console script of this package it always runs the project's
virtualenv, where the providers' modules are importable.
"""

import runpy


def main() -> None:
    runpy.run_module("pulumi.dynamic", run_name="__main__", alter_sys=True)
