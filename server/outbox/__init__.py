"""A generic durable outbox: rows enqueued inside the caller's transaction, sent by every worker.

* :func:`server.outbox.core.enqueue` — call it inside your transaction; the row commits with your change.
* :func:`server.outbox.core.register_sender` — one sender per channel (``webhook`` here; ``email``,
  ``sms``, ``push`` are added by the public-alerts area).
* :class:`server.outbox.dispatcher.OutboxDispatcher` — the Component on every worker that claims due
  rows with ``FOR UPDATE SKIP LOCKED``, sends them concurrently, retries with backoff and dead-letters.
"""
