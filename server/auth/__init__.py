"""Authentication: password logins, rotating refresh tokens, the caller's identity."""
