"""Geofences and driving alerts (enter/exit with hysteresis, speed limit, curfew), evaluated in ingest."""
