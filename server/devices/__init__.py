"""Responders and their devices (each device has its own revocable token)."""
