"""The event contract (SPEC section 1): JSON Schema files and the run-time parser."""
