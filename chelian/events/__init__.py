"""The internal event bus: capabilities announce what happened; others subscribe."""

from chelian.events.bus import DomainEvent, EventBus

__all__ = ["DomainEvent", "EventBus"]
