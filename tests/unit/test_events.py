"""Subscribers: each event goes to the handlers of its own type, in the order registered."""

from __future__ import annotations

from vigild.events import ActionOutcome, CycleMissed, DeliveryOutcome, Subscribers


def test_an_event_reaches_the_handlers_of_its_type_in_order() -> None:
    heard: list[tuple[str, object]] = []
    subscribers = Subscribers()
    subscribers.on(DeliveryOutcome, lambda event: heard.append(("first", event)))
    subscribers.on(ActionOutcome, lambda event: heard.append(("action", event)))
    subscribers.on(DeliveryOutcome, lambda event: heard.append(("second", event)))

    sent = DeliveryOutcome("pager", "sent", 0.2)
    subscribers.publish(sent)
    subscribers.publish(CycleMissed(30.0, ("db",)))  # nobody listens: nothing happens

    assert heard == [("first", sent), ("second", sent)]


def test_a_handler_runs_before_publish_returns() -> None:
    """No queue, no task: what a handler records is there when the producer goes on."""
    counted: list[str] = []
    subscribers = Subscribers()
    subscribers.on(ActionOutcome, lambda event: counted.append(event.outcome))
    subscribers.publish(ActionOutcome("rollback", "succeeded"))
    assert counted == ["succeeded"]


def test_a_failing_handler_keeps_the_event_from_nobody_else() -> None:
    def broken(event: ActionOutcome) -> None:
        raise KeyError(event.action)

    counted: list[str] = []
    subscribers = Subscribers()
    subscribers.on(ActionOutcome, broken)
    subscribers.on(ActionOutcome, lambda event: counted.append(event.outcome))
    subscribers.publish(ActionOutcome("rollback", "failed"))
    assert counted == ["failed"]
