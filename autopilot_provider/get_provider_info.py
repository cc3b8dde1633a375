"""What the Autopilot provider offers, declared once for Airflow's provider discovery."""

from __future__ import annotations

from autopilot_provider import __version__


def _secret(label: str, description: str) -> dict:
    return {"label": label, "description": description, "schema": {"type": ["string", "null"], "format": "password"}}


def _text(label: str, description: str, **schema) -> dict:
    return {"label": label, "description": description, "schema": {"type": ["string", "null"], **schema}}


#: Fields both HTTP connection types have (read by ``hooks.openapi.connection_extras``).
_HTTP_FIELDS = {
    "headers": {
        "label": "Extra headers",
        "description": "JSON object of headers sent with every request.",
        "schema": {"type": ["object", "null"]},
    },
    "verify": {
        "label": "Verify TLS certificates",
        "description": "Default true.",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
}


#: The connection type for OpenAPI-described products (``autopilot_provider.hooks.openapi``). The
#: extra fields are stored in the connection's extra JSON under these names.
OPENAPI_CONNECTION = {
    "connection-type": "autopilot_openapi",
    "hook-class-name": "autopilot_provider.hooks.openapi.OpenApiHook",
    "hook-name": "OpenAPI product (Autopilot)",
    "conn-fields": {
        "token": _secret("Bearer token", "For bearer auth (and OAuth2 or OpenID Connect with a ready token)."),
        "api_key": _secret(
            "API key", "Sent where the OpenAPI document's apiKey scheme says (header, query or cookie)."
        ),
        "client_id": _text("OAuth2 client id", "OAuth2 client credentials flow."),
        "client_secret": _secret("OAuth2 client secret", "OAuth2 client credentials flow."),
        "token_url": _text("OAuth2 token URL", "Default: the tokenUrl of the document's clientCredentials flow."),
        "scopes": _text("OAuth2 scopes", "Space-separated. Default: the scopes the operation asks for."),
        "client_auth": {
            "label": "OAuth2 client authentication",
            "description": "How the client id and secret reach the token URL: HTTP basic (default) or in the form body.",
            "schema": {"type": ["string", "null"], "enum": ["basic", "body", None]},
        },
        "security_scheme": _text(
            "Security scheme", "Use this scheme of the OpenAPI document (default: the first one the credentials fit)."
        ),
        "base_path": _text("Base path", "Appended to the host. Default: the path of the document's first server."),
        **_HTTP_FIELDS,
    },
    "ui-field-behaviour": {
        "hidden-fields": [],
        "relabeling": {
            "host": "Base URL or host",
            "schema": "Scheme (http or https)",
            "login": "Login (HTTP basic; or OAuth2 client id)",
            "password": "Password (HTTP basic; or OAuth2 client secret)",
        },
        "placeholders": {
            "host": "https://backup.example.com/api/v1",
            "schema": "https",
            "port": "443",
            "token_url": "https://login.example.com/oauth/token",
            "scopes": "clients:write jobs:read",
        },
    },
}


#: The connection type for ServiceNow instances (``autopilot_provider.hooks.servicenow``), used by
#: `ticket` steps.
SERVICENOW_CONNECTION = {
    "connection-type": "autopilot_servicenow",
    "hook-class-name": "autopilot_provider.hooks.servicenow.ServiceNowHook",
    "hook-name": "ServiceNow (Autopilot)",
    "conn-fields": {
        "token": _secret("OAuth2 access token", "Sent as a bearer token instead of the login and password."),
        **_HTTP_FIELDS,
    },
    "ui-field-behaviour": {
        "hidden-fields": [],
        "relabeling": {
            "host": "Instance (host or URL)",
            "schema": "Scheme (default https)",
            "login": "User name (basic auth)",
            "password": "Password (basic auth)",
        },
        "placeholders": {
            "host": "acme.service-now.com",
            "schema": "https",
            "login": "autopilot.integration",
        },
    },
}


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-provider-autopilot",
        "name": "Autopilot",
        "description": "Workflow definitions (YAML) compiled into Airflow DAGs: scripts, decisions, "
        "reusable functions, REST steps from OpenAPI documents, and the Autopilot UI plugin.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Autopilot",
                "external-doc-url": "https://github.com/autopilot/airflow-provider-autopilot",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Autopilot",
                "python-modules": [
                    "autopilot_provider.operators.script",
                    "autopilot_provider.operators.decision",
                    "autopilot_provider.operators.values",
                    "autopilot_provider.operators.task",
                    "autopilot_provider.operators.wait",
                    "autopilot_provider.operators.notify",
                    "autopilot_provider.operators.ticket",
                ],
            }
        ],
        "hooks": [
            {
                "integration-name": "Autopilot",
                "python-modules": ["autopilot_provider.hooks.openapi", "autopilot_provider.hooks.servicenow"],
            }
        ],
        "triggers": [{"integration-name": "Autopilot", "python-modules": ["autopilot_provider.triggers.openapi"]}],
        "notifications": ["autopilot_provider.notifications.autopilot.AutopilotNotifier"],
        "connection-types": [OPENAPI_CONNECTION, SERVICENOW_CONNECTION],
        "bundles": [{"integration-name": "Autopilot", "python-modules": ["dag_factory.bundle"]}],
    }
