"""The safety services for a request: the platform's (set by runtime), or one built per app.

An app built without a Platform (tests, an API-only process) gets services on a private bus
the first time a safety route is called, so owner actions still land in the outbox.
"""

from typing import Annotated

from fastapi import Depends, Request

from chelian.events import EventBus
from chelian.services.safety.platform import SafetyServices


def get_safety(request: Request) -> SafetyServices:
    state = request.app.state
    if getattr(state, "safety", None) is None:
        commands = lambda: getattr(state, "commands", None)  # noqa: E731 - read when used: set after create_app
        state.safety = SafetyServices.build(state.engine, EventBus(), state.catalog, commands=commands,
                                            settings=getattr(state, "settings", None))
    return state.safety


SafetyDep = Annotated[SafetyServices, Depends(get_safety)]
