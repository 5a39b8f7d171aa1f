"""The analytics core (SPEC sections 3-5): pure code, no Kafka, Redis or HTTP."""
