"""Hazards (manual and from feeds) and coordinator-drawn geofences: API, validation and SQL."""
