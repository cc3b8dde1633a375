"""The definition format: models, YAML with positions, validation."""
