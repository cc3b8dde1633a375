"""The plugin REST API, one router per resource."""
