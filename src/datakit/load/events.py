"""How the load clients report an operation to Locust: its `request` event, the one way
into Locust's statistics and (through listeners.py) the microsecond histograms.

    >>> fire = reporter("postgres")
    >>> fire("orders/insert", 0.0012)              # a success, 1.2 ms
    >>> fire("orders/insert", 2.0, TimeoutError())  # a failure
"""

from __future__ import annotations

from collections.abc import Callable

from locust import events

Fire = Callable[..., None]  # (name, seconds, exc=None)


def reporter(request_type: str) -> Fire:
    """`fire(name, seconds, exc=None)` for requests of `request_type`. Called per request
    on a CPU-bound hot path: the event's `fire` is looked up once, here."""
    send = events.request.fire

    def fire(name: str, seconds: float, exc: BaseException | None = None) -> None:
        send(request_type=request_type, name=name, response_time=seconds * 1000.0,
             response_length=0, exception=exc, context=None)

    return fire
