"""Hooks: how Autopilot talks to outside systems."""
