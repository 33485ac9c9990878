"""Signed webhook deliveries.

Each POST carries `X-Chelian-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` computed with
the subscription's secret over `<t>.<raw body>`. Signing the timestamp with the body lets a
receiver refuse replays (`verify` rejects signatures older than `tolerance_s`), and hex
HMAC-SHA256 is what every webhook receiver library already checks (the Stripe scheme).
The stdlib client keeps the sender free of extra dependencies; it runs in the worker
thread, never in ingest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import urllib.error
import urllib.request
from typing import Final

SIGNATURE_HEADER: Final = "X-Chelian-Signature"
EVENT_HEADER: Final = "X-Chelian-Event"
DELIVERY_HEADER: Final = "X-Chelian-Delivery"
TIMEOUT_S: Final = 10.0


class DeliveryError(Exception):
    """The receiver did not take the delivery (network error or non-2xx answer): retry later."""


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    secret: str, header: str, body: bytes, *, tolerance_s: int = 300, now: float | None = None
) -> bool:
    """What a receiver runs: True if `header` signs `body` with `secret` and is recent."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def deliver(url: str, secret: str, body: bytes, event: str, delivery_key: str) -> None:
    """POST one signed delivery; raises DeliveryError unless the receiver answers 2xx."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "chelian-webhooks/1",
        SIGNATURE_HEADER: sign(secret, int(time.time()), body),
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_key,
    }
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - owner-chosen URL
            status = response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} from {url}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"{url}: {exc}") from None
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status} from {url}")
