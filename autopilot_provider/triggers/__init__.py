"""Triggers: the async halves of deferrable operators (run in the triggerer)."""
