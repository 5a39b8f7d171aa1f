"""File inputs of `pulse report` and `pulse replay`: reading, splitting and sharded ingestion."""
