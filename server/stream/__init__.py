"""The live map stream: WebSocket/SSE viewers served from coalesced ticks that every worker
publishes through Redis (see ``docs/stream.md`` for the protocol)."""
