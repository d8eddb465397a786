"""A controllable HTTP target server (placeholder until written)."""
