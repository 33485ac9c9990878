"""Trips detected from ignition and motion in the ingest path, with a driving score."""
