"""Safety and security: crash response, roadside assistance, stolen-vehicle assistance.

Detectors run as ingest commit observers (they see each stored message once); what they
decide is stored first (incidents, tickets, reports) and then announced on the event bus,
where the notification outbox picks it up.
"""
