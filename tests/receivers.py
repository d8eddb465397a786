"""A recording webhook receiver (placeholder until written)."""
