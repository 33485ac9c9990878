"""The owner's webhook subscriptions: signed POSTs of safety events to their own systems."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from chelian.api.deps import API_PREFIX, CurrentUser
from chelian.api.routes.safety_deps import SafetyDep
from chelian.api.schemas.safety import WebhookCreate, WebhookPublic

router = APIRouter(prefix=f"{API_PREFIX}/users/me/webhooks", tags=["safety settings"])


@router.get("", response_model=list[WebhookPublic])
def list_webhooks(user: CurrentUser, safety: SafetyDep) -> list[WebhookPublic]:
    return [WebhookPublic.of(s) for s in safety.contacts.subscriptions(user.id)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookPublic,
    responses={400: {"description": "Not an http(s) URL, or unknown event names"}},
)
def subscribe(body: WebhookCreate, user: CurrentUser, safety: SafetyDep) -> WebhookPublic:
    """The answer carries the signing secret, once. Body of each delivery:
    `{"event", "key", "vin", "ts_ms", "data"}`; `key` is stable across retries (deduplicate on it)."""
    return WebhookPublic.of(safety.contacts.subscribe(user.id, body.url, body.events), with_secret=True)


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def unsubscribe(subscription_id: int, user: CurrentUser, safety: SafetyDep) -> Response:
    safety.contacts.unsubscribe(user.id, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
