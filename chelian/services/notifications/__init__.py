"""Notifications leave chelian through a persisted outbox: signed webhooks and e-mail."""
