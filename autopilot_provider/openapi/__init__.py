"""OpenAPI documents: loading, the uniform operation model, requests."""
