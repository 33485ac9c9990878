"""Who hears about an owner's cars: emergency contacts and webhook subscriptions.

Contacts belong to the owner (not to a car) so a new car is covered at once. A contact
needs an e-mail address or a phone number - the phone is stored for the people who act on
an incident (chelian sends no SMS itself). Webhook URLs must be http(s); the signing
secret is generated here and shown once, when the subscription is created.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlparse

from sqlalchemy import Engine

from chelian.errors import NotFoundError, ValidationError
from chelian.services.notifications.webhooks import new_secret
from chelian.services.safety.names import ALL_EVENTS
from chelian.storage.db import now_ms
from chelian.storage.repositories import notifications as repo
from chelian.storage.repositories.notifications import Contact, Subscription

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9 ()-]{5,31}$")
MAX_CONTACTS = 10
MAX_SUBSCRIPTIONS = 20


class ContactService:
    def __init__(self, engine: Engine, clock: Callable[[], int] = now_ms) -> None:
        self.engine = engine
        self.clock = clock

    def add_contact(self, owner_id: int, name: str, email: str | None, phone: str | None) -> Contact:
        if not email and not phone:
            raise ValidationError("a contact needs an e-mail address or a phone number")
        if email and not EMAIL.match(email):
            raise ValidationError(f"not an e-mail address: {email!r}")
        if phone and not PHONE.match(phone):
            raise ValidationError(f"not a phone number: {phone!r}")
        with self.engine.begin() as conn:
            if len(repo.contacts_of(conn, owner_id)) >= MAX_CONTACTS:
                raise ValidationError(f"at most {MAX_CONTACTS} emergency contacts")
            return repo.add_contact(conn, owner_id, name.strip(), email or None, phone or None, self.clock())

    def contacts(self, owner_id: int) -> list[Contact]:
        with self.engine.connect() as conn:
            return repo.contacts_of(conn, owner_id)

    def remove_contact(self, owner_id: int, contact_id: int) -> None:
        with self.engine.begin() as conn:
            if not repo.delete_contact(conn, owner_id, contact_id):
                raise NotFoundError(f"no emergency contact {contact_id}")

    def subscribe(self, owner_id: int, url: str, events: list[str]) -> Subscription:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValidationError(f"webhook URL must be http(s)://host/...: {url!r}")
        unknown = sorted(set(events) - {*ALL_EVENTS, "*"})
        if unknown or not events:
            raise ValidationError(f"unknown events {unknown}; choose from {', '.join(ALL_EVENTS)} or '*'")
        with self.engine.begin() as conn:
            if len(repo.subscriptions_of(conn, owner_id)) >= MAX_SUBSCRIPTIONS:
                raise ValidationError(f"at most {MAX_SUBSCRIPTIONS} webhook subscriptions")
            return repo.add_subscription(conn, owner_id, url, new_secret(), sorted(set(events)), self.clock())

    def subscriptions(self, owner_id: int) -> list[Subscription]:
        with self.engine.connect() as conn:
            return repo.subscriptions_of(conn, owner_id)

    def unsubscribe(self, owner_id: int, subscription_id: int) -> None:
        with self.engine.begin() as conn:
            if not repo.delete_subscription(conn, owner_id, subscription_id):
                raise NotFoundError(f"no webhook subscription {subscription_id}")
