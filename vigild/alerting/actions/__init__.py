"""Actions: what vigild may do about an alert besides telling people (a rollback)."""
