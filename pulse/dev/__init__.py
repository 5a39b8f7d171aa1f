"""Development tools: `pulse dev`, the embedded Redis, `pulse simulate` and its synthetic traffic."""
