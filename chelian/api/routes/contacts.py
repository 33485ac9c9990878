"""The owner's emergency contacts: told about a crash in any of their cars."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from chelian.api.deps import API_PREFIX, CurrentUser
from chelian.api.routes.safety_deps import SafetyDep
from chelian.api.schemas.safety import ContactCreate, ContactPublic

router = APIRouter(prefix=f"{API_PREFIX}/users/me/emergency-contacts", tags=["safety settings"])


@router.get("", response_model=list[ContactPublic])
def list_contacts(user: CurrentUser, safety: SafetyDep) -> list[ContactPublic]:
    return [ContactPublic.of(c) for c in safety.contacts.contacts(user.id)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ContactPublic,
    responses={400: {"description": "Neither e-mail nor phone, or one of them malformed"}},
)
def add_contact(body: ContactCreate, user: CurrentUser, safety: SafetyDep) -> ContactPublic:
    return ContactPublic.of(safety.contacts.add_contact(user.id, body.name, body.email, body.phone))


@router.delete("/{contact_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def remove_contact(contact_id: int, user: CurrentUser, safety: SafetyDep) -> Response:
    safety.contacts.remove_contact(user.id, contact_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
