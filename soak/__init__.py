"""Long crash, fault, storm and fuzz runs: `make soak` (bounded, loopback only)."""
