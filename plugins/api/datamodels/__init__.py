"""The plugin API's request and response models (pydantic), one module per resource; ``common`` holds
the error body and the diagnostics every resource shares. Models only: no routes, no database."""
