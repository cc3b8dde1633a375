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


def _option(description: str, default: str, *, kind: str = "string", example: str | None = None) -> dict:
    return {
        "description": description,
        "version_added": "0.1.0",
        "type": kind,
        "example": example,
        "default": default,
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
                    "autopilot_provider.operators.use",
                    "autopilot_provider.operators.check_form",
                    "autopilot_provider.operators.guard",
                    "autopilot_provider.operators.approval",
                    "autopilot_provider.operators.form",
                    "autopilot_provider.operators.task",
                    "autopilot_provider.operators.wait",
                    "autopilot_provider.operators.wait_time",
                    "autopilot_provider.operators.notify",
                    "autopilot_provider.operators.ticket",
                    "autopilot_provider.operators.trigger",
                    "autopilot_provider.operators.workflow",
                ],
            }
        ],
        "hooks": [
            {
                "integration-name": "Autopilot",
                "python-modules": [
                    "autopilot_provider.hooks.openapi",
                    "autopilot_provider.hooks.servicenow",
                    "autopilot_provider.hooks.choices",
                    "autopilot_provider.hooks.alerts",
                ],
            }
        ],
        "triggers": [{"integration-name": "Autopilot", "python-modules": ["autopilot_provider.triggers.openapi"]}],
        "notifications": ["autopilot_provider.notifications.autopilot.AutopilotNotifier"],
        "connection-types": [OPENAPI_CONNECTION, SERVICENOW_CONNECTION],
        "bundles": [{"integration-name": "Autopilot", "python-modules": ["dag_factory.bundle"]}],
        "config": {
            "autopilot": {
                "description": "Autopilot: definitions, approvals and the plugin's API.",
                "options": {
                    "designer_roles": _option(
                        "SimpleAuthManager roles (comma separated) holding the designer permission: save "
                        "definitions composed of reviewed parts. With another auth manager grant `can_edit` on "
                        "the custom resource 'Autopilot Definitions' instead (docs/security.md).",
                        "user,op,admin",
                        example="op,admin",
                    ),
                    "code_author_roles": _option(
                        "SimpleAuthManager roles (comma separated) holding the code-author permission: save "
                        "definitions that add or change code workers run (scripts). With another auth manager "
                        "grant `can_edit` on 'Autopilot Code'. A code author can run anything a worker can.",
                        "admin",
                        example="op,admin",
                    ),
                    "definitions_dir": _option(
                        "The definitions folder the plugin API and the DAG bundle serve (default: the bundle's "
                        "`definitions` argument, else [core] dags_folder). The environment variable "
                        "AUTOPILOT_DEFINITIONS wins over it.",
                        "",
                        example="/opt/airflow/definitions",
                    ),
                    "on_behalf_users": _option(
                        "Airflow accounts (comma separated; integrations, service accounts) that may name "
                        "another person in a form's `requester` field. Nobody else can.",
                        "",
                        example="servicenow_bot",
                    ),
                    "request_max_ahead_days": _option(
                        "How far ahead a request may ask to start (`start_at` in the portal and in POST "
                        "/autopilot/api/v1/workflows/{id}/runs), in days; a later start is refused (422 on `start_at`).",
                        "90",
                        kind="integer",
                    ),
                    "choices_cache_seconds": _option(
                        "How long a form field's choices fetched from an API operation are cached.", "30", kind="float"
                    ),
                    "approval_sweep_seconds": _option(
                        "How often the API server asks, reminds, escalates and times out approvals (0: never).",
                        "5",
                        kind="float",
                    ),
                    "redeliver_seconds": _option(
                        "First wait before a failed approval mail or Slack message is sent again (doubling, at most "
                        "5 times).",
                        "60",
                        kind="float",
                    ),
                    "resume_grace_seconds": _option(
                        "How long a decided approval waits for its task to resume by itself before the sweep "
                        "resumes it.",
                        "15",
                        kind="float",
                    ),
                    "max_request_bytes": _option(
                        "Largest request body the Autopilot API accepts (bytes; larger ones are answered 413 "
                        "before they are parsed), except OpenAPI imports (max_import_bytes).",
                        "2097152",
                        kind="integer",
                    ),
                    "max_import_bytes": _option(
                        "Largest request body of an OpenAPI import (`POST /autopilot/api/v1/apis`, the document "
                        "sent as `content`), in bytes.",
                        "33554432",
                        kind="integer",
                    ),
                    "alert_max_body_bytes": _option(
                        "Largest body an alert endpoint (`POST /autopilot/api/v1/alerts/<id>`) accepts, in bytes; "
                        "larger deliveries are answered 413 before they are read further.",
                        "1048576",
                        kind="integer",
                    ),
                    "alert_delivery_retention_days": _option(
                        "How many days the alert delivery log (`autopilot_alert_delivery`) keeps a delivery; older "
                        "ones are purged by the API server's sweep (0: keep them forever).",
                        "30",
                        kind="integer",
                    ),
                    "alert_admin_roles": _option(
                        "SimpleAuthManager roles (comma separated) that may replay an alert delivery (start its runs "
                        "again without the sender's signature). With another auth manager grant `can_edit` on the "
                        "custom resource 'Autopilot Alerts' instead.",
                        "admin",
                        example="op,admin",
                    ),
                    "trigger_alert_base_url": _option(
                        "The Airflow API server URL trigger tasks deliver their alerts to (they POST to "
                        "<this>/autopilot/api/v1/alerts/<id>, signed with the alert's scheme). Empty: [core] "
                        "execution_api_server_url without its /execution path, else [api] base_url.",
                        "",
                        example="http://airflow-api-server:8080",
                    ),
                    "approval_public_key": _option(
                        "The public key (base64, Ed25519) workers verify signed approval decisions with. Empty: "
                        "each worker process fetches it once from the API server "
                        "(GET /autopilot/api/v1/keys/approvals next to [core] execution_api_server_url).",
                        "",
                    ),
                    "smtp_conn_id": _option("The SMTP connection approval mails go out through.", "smtp_default"),
                    "slack_conn_id": _option("The Slack connection approval messages go out through.", "slack_default"),
                    "fetch_allowlist": {
                        "description": "Host names and IP networks (CIDR; an address is a network of one), comma "
                        "separated, that OpenAPI imports by URL may fetch from although they are internal: "
                        "loopback, private (RFC 1918), unique-local, link-local, CGNAT, multicast, reserved and "
                        "unspecified addresses are refused otherwise. Checked for every address a host resolves "
                        "to and on every redirect.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "docs.corp.example, 10.20.0.0/16",
                        "default": "",
                    },
                    "oauth_token_url_allowlist": {
                        "description": "Token URLs (an origin such as https://login.example.com, or a URL prefix "
                        "ending at a path segment), comma separated, to which OAuth2 client credentials may be "
                        "sent when the tokenUrl comes from the OpenAPI document. A token URL from the connection "
                        "(extra `token_url`) or on the connection host's own origin needs no entry.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "https://login.microsoftonline.com/, https://auth.example.com/oauth2/",
                        "default": "",
                    },
                    "allow_self_approval": {
                        "description": "Let an approval step's `exclude_requester: false` take effect, so a "
                        "requester may approve their own request (each such vote is logged and recorded as a "
                        "`self_approval` event). Off: a requester never counts as an approver of their own "
                        "request, and `exclude_requester: false` is a validation error.",
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": None,
                        "default": "False",
                    },
                    "review_required_for": {
                        "description": "Which changes to a definition need a second person's review before they "
                        "take effect (four-eyes): a comma list of `approvals` (approval steps added, removed or "
                        "changed) and `scripts` (a script step's code). Empty: no review.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "approvals,scripts",
                        "default": "approvals",
                    },
                    "script_env_allowlist": {
                        "description": "Comma-separated names or globs of the worker's environment variables that "
                        "script steps may see, besides PATH, HOME, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TZ and "
                        "TMPDIR. Variables whose names start with AIRFLOW (configuration, connections, variables) "
                        "are never passed on, whatever this says.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "HTTPS_PROXY,NO_PROXY,REQUESTS_CA_BUNDLE,MYCOMPANY_*",
                        "default": "",
                    },
                },
            }
        },
    }
