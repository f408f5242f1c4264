"""The fence evaluator (one leader worker) and the fence-events API."""
