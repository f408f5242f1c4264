"""Notifications for responders: hazards they entered or left, and their new assignments."""
