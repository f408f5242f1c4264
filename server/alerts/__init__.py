"""Public alerts: compose, approve, publish CAP 1.2 + Atom, and deliver to subscribers through the outbox."""
