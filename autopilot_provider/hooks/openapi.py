"""``OpenApiHook``: send requests to a product described by an OpenAPI document, with the base URL and
credentials of an Airflow Connection of type ``autopilot_openapi``.

* **Base URL**: the connection's host (``https://backup.example.com`` or ``backup.example.com`` with
  the *Scheme* and *Port* fields); when the host has no path, the path of the spec's first server is
  appended (``/api/v1``); extra ``base_path`` overrides it. A connection without a host uses the
  spec's first server URL.
* **Auth** follows the operation's ``security`` (else the document's): the first alternative whose
  schemes the connection can satisfy — HTTP basic (login/password), bearer (extra ``token``), API key
  in a header, the query or a cookie (extra ``api_key``), OAuth2 client credentials (extra
  ``client_id``/``client_secret``, ``token_url`` and ``scopes`` default to the spec's flow). OAuth2
  tokens are cached per process until shortly before they expire, and fetched again after a 401.
  The client credentials go only to a token URL that the deployment chose: the connection's extra
  ``token_url``, or the document's ``tokenUrl`` when it is on the connection host's origin or matches
  ``[autopilot] oauth_token_url_allowlist`` — never to a URL that only the document names (whoever
  may import a document would otherwise receive the secrets of any connection an Api names). For
  the same reason a connection without a host (base URL from the document's server) sends nothing
  of the connection's: an operation that needs credentials, or a connection with extra ``headers``,
  fails with :class:`OpenApiAuthError` before anything is sent. The API server (form choices) calls
  no base URL that only the document chose (``document_base_url=False``).
* **Redirects** are followed by hand, at most :data:`MAX_REDIRECTS`, and only on the same origin
  (scheme, host, port) with the same headers; a redirect to another origin fails the call with an
  :class:`OpenApiError` naming the ``Location`` — nothing is sent there (httpx would forward API keys
  and extra headers to it).
* **Re-sending** on 429, 5xx and connection errors with backoff (``Retry-After`` wins), see
  :class:`~autopilot_provider.openapi.request.RetryPolicy`.
* **Secrets** (password, token, API key, client secret, fetched tokens, basic credentials) are
  registered with Airflow's secrets masker before anything is logged.

The send loop exists twice, sync (:func:`send`, the task operator) and async (:func:`asend`, the wait
trigger in the triggerer); everything else is shared.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from airflow.sdk import BaseHook

from autopilot_provider import config
from autopilot_provider.openapi.request import PreparedRequest, RetryPolicy, excerpt, parse_body
from autopilot_provider.openapi.spec import Operation, Spec

CONN_TYPE = "autopilot_openapi"
#: A cached OAuth2 token is fetched again this long before it expires (or at half its life).
TOKEN_MARGIN = 30.0
#: Same-origin redirects followed per request.
MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}


class OpenApiError(Exception):
    """A request could not be made or answered (after the retries)."""


class OpenApiAuthError(OpenApiError):
    """The connection cannot satisfy the operation's security, or a token could not be fetched."""


# ---------------------------------------------------------------------------------------------
# The connection
# ---------------------------------------------------------------------------------------------


@dataclass
class Credentials:
    """What an ``autopilot_openapi`` connection holds, parsed (JSON-able)."""

    conn_id: str = ""
    host_url: str | None = None
    login: str | None = None
    password: str | None = None
    token: str | None = None
    api_key: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token_url: str | None = None
    scopes: list[str] | None = None
    client_auth: str = "basic"  # how the OAuth2 client authenticates: basic | body
    security_scheme: str | None = None  # force one of the spec's security schemes
    base_path: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    verify: bool | str = True

    @classmethod
    def from_connection(cls, conn: Any) -> Credentials:
        get, headers, verify = connection_extras(conn, CONN_TYPE)
        scopes = get("scopes")
        if isinstance(scopes, str):
            scopes = [s for s in scopes.replace(",", " ").split() if s]
        return cls(
            conn_id=getattr(conn, "conn_id", "") or "",
            host_url=_host_url(conn),
            login=conn.login or None,
            password=conn.password or None,
            token=get("token"),
            api_key=get("api_key"),
            client_id=get("client_id"),
            client_secret=get("client_secret"),
            token_url=get("token_url"),
            scopes=scopes,
            client_auth=get("client_auth") or "basic",
            security_scheme=get("security_scheme"),
            base_path=get("base_path"),
            headers=headers,
            verify=verify,
        )

    def secrets(self) -> list[str]:
        values = [self.password, self.token, self.api_key, self.client_secret]
        if self.login and self.password:
            values.append(base64.b64encode(f"{self.login}:{self.password}".encode()).decode())
        return [v for v in values if v]


def _extra(conn: Any) -> dict[str, Any]:
    try:
        extra = conn.extra_dejson
    except Exception:  # noqa: BLE001 - a malformed extra is reported as empty
        extra = {}
    return extra if isinstance(extra, dict) else {}


def connection_extras(conn: Any, conn_type: str) -> tuple[Callable[[str], Any], dict[str, str], bool | str]:
    """A connection's extras as Autopilot's connection types write them: ``get(name)`` (the plain key,
    else the UI form's ``extra__<type>__<name>``; empty means unset), the extra HTTP ``headers`` (an
    object, or its JSON text) and ``verify`` (TLS: true/false or a CA bundle path; default true)."""
    extra = _extra(conn)

    def get(name: str) -> Any:
        value = extra.get(name, extra.get(f"extra__{conn_type}__{name}"))
        return None if value == "" else value

    headers = get("headers") or {}
    if isinstance(headers, str):
        headers = json.loads(headers)
    verify = get("verify")
    if isinstance(verify, str) and verify.lower() in ("true", "false"):
        verify = verify.lower() == "true"
    return get, {str(k): str(v) for k, v in headers.items()}, True if verify is None else verify


def _host_url(conn: Any) -> str | None:
    host = (conn.host or "").strip()
    if not host:
        return None
    if "://" not in host:
        scheme = (conn.schema or "https").strip() or "https"
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if conn.port and parts.port is None:
        host = parts._replace(netloc=f"{parts.netloc}:{conn.port}").geturl()
    return host.rstrip("/")


def base_url(spec: Spec | None, creds: Credentials) -> str:
    """The URL the operation paths are appended to."""
    server = _server_url(spec) if spec is not None else ""
    if creds.host_url:
        url = creds.host_url
        if creds.base_path is not None:
            return url.rstrip("/") + "/" + creds.base_path.strip("/") if creds.base_path.strip("/") else url
        if not urlsplit(url).path.strip("/") and server:
            url += urlsplit(server).path.rstrip("/")
        return url.rstrip("/")
    if not server or not urlsplit(server).scheme:
        where = f"its server is {server!r}" if server else "it declares no server"
        raise OpenApiError(
            f"connection '{creds.conn_id}' has no host and the OpenAPI document cannot supply the base URL "
            f"({where}): set the connection's host"
        )
    return server.rstrip("/") + ("/" + creds.base_path.strip("/") if creds.base_path else "")


def _server_url(spec: Spec) -> str:
    """The first server's URL, its ``{variables}`` replaced by their defaults."""
    url = spec.servers[0] if spec.servers else ""
    if "{" not in url:  # the (possibly large, lazily read) document is only needed for variables
        return url
    servers = spec.document.get("servers") if isinstance(spec.document, dict) else None
    if isinstance(servers, list) and servers and isinstance(servers[0], dict):
        for name, variable in (servers[0].get("variables") or {}).items():
            url = url.replace("{" + name + "}", str((variable or {}).get("default", "")))
    return url


# ---------------------------------------------------------------------------------------------
# Auth: pick the security requirement the connection can satisfy
# ---------------------------------------------------------------------------------------------


def _needs(scheme: dict[str, Any]) -> str:
    kind = scheme.get("type")
    if kind == "http":
        return {"basic": "login and password", "bearer": "extra `token`"}.get(
            str(scheme.get("scheme", "")).lower(), f"http {scheme.get('scheme')} (not supported)"
        )
    if kind == "apiKey":
        return f"extra `api_key` (sent in {scheme.get('in')} '{scheme.get('name')}')"
    if kind == "oauth2":
        if "clientCredentials" in (scheme.get("flows") or {}):
            return "extra `client_id` and `client_secret` (OAuth2 client credentials) or `token`"
        return "extra `token` (an OAuth2 access token)"
    if kind == "openIdConnect":
        return "extra `token`"
    return f"{kind} (not supported)"


def _scheme_auth(name: str, scheme: dict[str, Any], scopes: list[str], creds: Credentials, base: str) -> dict | None:
    """The auth material for one scheme, or None when the connection cannot satisfy it."""
    kind = scheme.get("type")
    if kind == "http":
        http = str(scheme.get("scheme", "")).lower()
        if http == "basic" and creds.login is not None and creds.password is not None:
            basic = base64.b64encode(f"{creds.login}:{creds.password}".encode()).decode()
            return {"headers": {"Authorization": f"Basic {basic}"}}
        if http == "bearer":
            token = creds.token or (creds.password if not creds.login else None)
            return {"headers": {"Authorization": f"Bearer {token}"}} if token else None
        return None
    if kind == "apiKey":
        key = creds.api_key or (creds.password if not creds.login and not creds.token else None)
        if not key:
            return None
        where, key_name = scheme.get("in"), str(scheme.get("name"))
        if where == "header":
            return {"headers": {key_name: key}}
        if where == "query":
            return {"query": [[key_name, key]]}
        if where == "cookie":
            return {"cookies": {key_name: key}}
        return None
    if kind == "oauth2":
        flow = (scheme.get("flows") or {}).get("clientCredentials")
        client_id = creds.client_id or (creds.login if not creds.token else None)
        client_secret = creds.client_secret or (creds.password if not creds.token else None)
        if flow is not None and client_id and client_secret:
            token_url = creds.token_url or flow.get("tokenUrl")
            if not token_url:
                return None
            token_url = urljoin(base.rstrip("/") + "/", str(token_url))
            if not creds.token_url:
                check_document_token_url(token_url, creds, name)
            return {
                "oauth2": {
                    "token_url": token_url,
                    "client_id": client_id,
                    "client_secret": client_secret,
                    "scopes": list(creds.scopes if creds.scopes is not None else scopes),
                    "client_auth": creds.client_auth,
                }
            }
        return {"headers": {"Authorization": f"Bearer {creds.token}"}} if creds.token else None
    if kind == "openIdConnect" and creds.token:
        return {"headers": {"Authorization": f"Bearer {creds.token}"}}
    return None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower().rstrip("."), port


def token_url_allowed(token_url: str, allowlist: list[str]) -> bool:
    """Whether ``token_url`` is on an entry's origin and, when the entry has a path, under it (at a
    segment boundary: ``https://a/oauth`` allows ``https://a/oauth/token``, not ``https://a/oauth2``)."""
    origin = _origin(token_url)
    if not origin[1] or origin[0] not in ("http", "https"):
        return False
    path = urlsplit(token_url).path or "/"
    for entry in allowlist:
        if _origin(entry) != origin:
            continue
        prefix = urlsplit(entry).path or "/"
        if prefix == "/" or path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return True
    return False


def check_document_token_url(token_url: str, creds: Credentials, scheme: str) -> None:
    """A token URL taken from the OpenAPI document receives the connection's client credentials only
    on the connection host's origin or when the allow-list names it; else OpenApiAuthError (and
    nothing is sent)."""
    if creds.host_url and _origin(token_url) == _origin(creds.host_url) and _origin(token_url)[1]:
        return
    if token_url_allowed(token_url, config.oauth_token_url_allowlist()):
        return
    raise OpenApiAuthError(
        f"connection '{creds.conn_id}': the OAuth2 token URL {token_url} of security scheme '{scheme}' comes "
        "from the OpenAPI document, not from the connection, so the client credentials are not sent to it; "
        "set the connection's extra `token_url`, or add the URL to [autopilot] oauth_token_url_allowlist"
    )


def select_auth(spec: Spec, operation: Operation, creds: Credentials, base: str) -> dict[str, Any]:
    """Auth material for ``operation``: ``{"schemes", "headers", "query", "cookies", "oauth2"}`` (JSON-able)."""
    if creds.host_url is None and creds.headers:
        raise OpenApiAuthError(
            f"connection '{creds.conn_id}' has no host, so the base URL ({base}) comes from the OpenAPI document "
            "alone; the connection's extra headers are only sent to a host the connection names: set its host"
        )
    requirements = list(operation.security) if operation.security is not None else list(spec.security)
    empty = {"schemes": [], "headers": {}, "query": [], "cookies": {}, "oauth2": None}
    if not requirements:
        return empty
    if creds.security_scheme:
        if creds.security_scheme not in spec.security_schemes:
            raise OpenApiAuthError(
                f"connection '{creds.conn_id}' asks for security scheme '{creds.security_scheme}', which the "
                f"OpenAPI document does not define (it has: {', '.join(spec.security_schemes) or 'none'})"
            )
        requirements = [r for r in requirements if creds.security_scheme in r] or [{creds.security_scheme: []}]
    wanted: list[str] = []
    for requirement in requirements:
        material = {**empty, "schemes": list(requirement), "headers": {}, "query": [], "cookies": {}}
        satisfied = True
        for name, scopes in requirement.items():
            scheme = spec.security_schemes.get(name)
            part = _scheme_auth(name, scheme, list(scopes or []), creds, base) if scheme else None
            if part is None:
                satisfied = False
                wanted.append(f"{name}: {_needs(scheme) if scheme else 'undefined scheme'}")
                break
            material["headers"].update(part.get("headers", {}))
            material["query"] += part.get("query", [])
            material["cookies"].update(part.get("cookies", {}))
            material["oauth2"] = part.get("oauth2") or material["oauth2"]
        if satisfied:
            if creds.host_url is None and any(material[k] for k in ("headers", "query", "cookies", "oauth2")):
                raise OpenApiAuthError(
                    f"connection '{creds.conn_id}' has no host, so the base URL ({base}) comes from the OpenAPI "
                    "document alone; the connection's credentials are only sent to a host the connection "
                    "names: set its host"
                )
            return material
    raise OpenApiAuthError(
        f"connection '{creds.conn_id}' has no credentials that operation '{operation.id}' accepts; "
        f"it needs one of: {'; '.join(dict.fromkeys(wanted))}"
    )


def auth_secrets(auth: Mapping[str, Any]) -> list[str]:
    """Every secret in auth material (to mask)."""
    values: list[str] = []
    for name, value in (auth.get("headers") or {}).items():
        values.append(value)
        if name.lower() == "authorization" and " " in value:
            values.append(value.split(" ", 1)[1])
    values += [pair[1] for pair in auth.get("query") or []]
    values += list((auth.get("cookies") or {}).values())
    if auth.get("oauth2"):
        values.append(auth["oauth2"]["client_secret"])
    return [v for v in values if v]


# ---------------------------------------------------------------------------------------------
# OAuth2 client credentials, cached per process
# ---------------------------------------------------------------------------------------------

_TOKENS: dict[tuple[str, str, tuple[str, ...]], tuple[str, float]] = {}
_TOKENS_LOCK = threading.Lock()


def _token_key(oauth: Mapping[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    return (oauth["token_url"], oauth["client_id"], tuple(sorted(oauth.get("scopes") or ())))


def cached_token(oauth: Mapping[str, Any]) -> str | None:
    with _TOKENS_LOCK:
        entry = _TOKENS.get(_token_key(oauth))
    if entry and entry[1] > time.time():
        return entry[0]
    return None


def forget_token(oauth: Mapping[str, Any]) -> None:
    with _TOKENS_LOCK:
        _TOKENS.pop(_token_key(oauth), None)


def _token_request(oauth: Mapping[str, Any]) -> dict[str, Any]:
    data = {"grant_type": "client_credentials"}
    if oauth.get("scopes"):
        data["scope"] = " ".join(oauth["scopes"])
    headers = {"Accept": "application/json"}
    if oauth.get("client_auth") == "body":
        data.update(client_id=oauth["client_id"], client_secret=oauth["client_secret"])
    else:
        basic = base64.b64encode(f"{oauth['client_id']}:{oauth['client_secret']}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    return {"url": oauth["token_url"], "data": data, "headers": headers}


def _store_token(oauth: Mapping[str, Any], response: httpx.Response) -> str:
    body = parse_body(response.content, response.headers.get("content-type") or "application/json")
    if response.status_code >= 400 or not isinstance(body, dict) or not body.get("access_token"):
        raise OpenApiAuthError(
            f"OAuth2 token request to {oauth['token_url']} failed: HTTP {response.status_code}: {excerpt(body, 500)}"
        )
    token = str(body["access_token"])
    lifetime = float(body.get("expires_in") or 3600)
    expires = time.time() + max(lifetime - min(TOKEN_MARGIN, lifetime / 2), 0)
    with _TOKENS_LOCK:
        _TOKENS[_token_key(oauth)] = (token, expires)
    return token


# ---------------------------------------------------------------------------------------------
# Sending (sync and async)
# ---------------------------------------------------------------------------------------------


def _headers(request: PreparedRequest, auth: Mapping[str, Any], extra: Mapping[str, str], token: str | None):
    headers = {**extra, **request.headers, **(auth.get("headers") or {})}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    cookies = {**request.cookies, **(auth.get("cookies") or {})}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return headers


def _redirect(method: str, url: str, content: bytes | None, response: httpx.Response):
    """Where a redirect answer sends the request next — ``(method, url, content)``, None when the answer
    is no redirect; OpenApiError when it points to another origin (nothing is sent there: the request
    carries the connection's credentials and headers, meant for the host the connection names)."""
    location = response.headers.get("location")
    if response.status_code not in _REDIRECTS or not location:
        return None
    target = urljoin(url, location)
    if _origin(target) != _origin(url):
        raise OpenApiError(
            f"{method} {url} answered HTTP {response.status_code} redirecting to another origin ({target}); "
            "redirects are followed only on the same scheme, host and port, so that the connection's "
            "credentials and headers reach no other server: point the connection at the server that answers"
        )
    if (response.status_code == 303 and method != "HEAD") or (response.status_code in (301, 302) and method == "POST"):
        return "GET", target, None
    return method, target, content


def as_response(response: httpx.Response) -> dict[str, Any]:
    """``{status, headers, body}``: what outputs and conditions see as ``response``."""
    return {
        "status": response.status_code,
        "headers": {k.lower(): v for k, v in response.headers.items()},
        "body": parse_body(response.content, response.headers.get("content-type")),
    }


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _exchange(
    request: PreparedRequest,
    base: str,
    auth: Mapping[str, Any],
    policy: RetryPolicy,
    extra_headers: Mapping[str, str],
    log: Any,
):
    """The request protocol without I/O, shared by :func:`send` and :func:`asend`: OAuth2 tokens
    (fetched when missing, fetched again once after a 401), retries on transport errors and on
    retriable statuses (``Retry-After`` wins), logging. A generator: it yields ``(action, argument)``
    — ``post``/``request`` (httpx keyword arguments; the response is sent back, a transport error is
    thrown in), ``sleep`` (seconds), ``mask`` (a secret) — and returns ``{status, headers, body,
    attempts}``."""
    url = request.url(base, auth.get("query") or [])
    oauth = auth.get("oauth2")
    attempt, refreshed = 0, False
    while True:
        token = None
        if oauth:
            token = cached_token(oauth)
            if token is None:
                spec = _token_request(oauth)
                _log(log, "Fetching an OAuth2 token from %s", spec["url"])
                try:
                    answer = yield "post", {"url": spec["url"], "data": spec["data"], "headers": spec["headers"]}
                except httpx.TransportError as exc:
                    raise OpenApiError(f"OAuth2 token request to {spec['url']}: {_describe(exc)}") from None
                token = _store_token(oauth, answer)
                yield "mask", token
        started = time.monotonic()
        method, target, content = request.method, url, request.content
        headers = _headers(request, auth, extra_headers, token)
        try:
            response = yield "request", {"method": method, "url": target, "headers": headers, "content": content}
            for hop in range(MAX_REDIRECTS + 1):
                following = _redirect(method, target, content, response)
                if following is None:
                    break
                if hop == MAX_REDIRECTS:
                    raise OpenApiError(f"{request.method} {url} redirects more than {MAX_REDIRECTS} times")
                _log(log, "%s %s → HTTP %s, following to %s", method, target, response.status_code, following[1])
                method, target, content = following
                if content is None:
                    headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
                response = yield "request", {"method": method, "url": target, "headers": headers, "content": content}
        except httpx.TransportError as exc:
            if attempt >= policy.retries:
                raise OpenApiError(
                    f"{request.method} {url}: {_describe(exc)} (after {attempt + 1} attempt(s))"
                ) from None
            delay = policy.delay(attempt)
            _log(
                log,
                "%s %s: %s; retrying in %.1fs (retry %d of %d)",
                request.method,
                url,
                _describe(exc),
                delay,
                attempt + 1,
                policy.retries,
            )
            yield "sleep", delay
            attempt += 1
            continue
        _log(
            log,
            "%s %s → HTTP %s (%.0f ms)",
            method,
            target,
            response.status_code,
            1000 * (time.monotonic() - started),
        )
        if response.status_code == 401 and oauth and not refreshed:
            _log(log, "HTTP 401: fetching a new OAuth2 token and sending again")
            forget_token(oauth)
            refreshed = True
            continue
        if policy.retriable(response.status_code) and attempt < policy.retries:
            delay = policy.delay(attempt, {k.lower(): v for k, v in response.headers.items()})
            _log(
                log,
                "HTTP %s: retrying in %.1fs (retry %d of %d)",
                response.status_code,
                delay,
                attempt + 1,
                policy.retries,
            )
            yield "sleep", delay
            attempt += 1
            continue
        result = as_response(response)
        result["attempts"] = attempt + 1
        return result


def send(
    client: httpx.Client,
    request: PreparedRequest,
    base: str,
    auth: Mapping[str, Any],
    *,
    policy: RetryPolicy,
    extra_headers: Mapping[str, str] | None = None,
    log: Any = None,
    sleep=time.sleep,
) -> dict[str, Any]:
    """Send ``request`` with retries; return ``{status, headers, body}`` (non-2xx included)."""
    steps = _exchange(request, base, auth, policy, extra_headers or {}, log)
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            action, argument = steps.throw(error) if error is not None else steps.send(reply)
        except StopIteration as done:
            return done.value
        reply, error = None, None
        try:
            if action == "post":
                reply = client.post(**argument)
            elif action == "request":
                reply = client.request(**argument)
            elif action == "sleep":
                sleep(argument)
            else:
                _mask(argument)
        except httpx.TransportError as exc:
            error = exc


async def asend(
    client: httpx.AsyncClient,
    request: PreparedRequest,
    base: str,
    auth: Mapping[str, Any],
    *,
    policy: RetryPolicy,
    extra_headers: Mapping[str, str] | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """:func:`send` for triggers: the same protocol, with asyncio I/O."""
    steps = _exchange(request, base, auth, policy, extra_headers or {}, log)
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            action, argument = steps.throw(error) if error is not None else steps.send(reply)
        except StopIteration as done:
            return done.value
        reply, error = None, None
        try:
            if action == "post":
                reply = await client.post(**argument)
            elif action == "request":
                reply = await client.request(**argument)
            elif action == "sleep":
                await asyncio.sleep(argument)
            else:
                await _amask(argument)
        except httpx.TransportError as exc:
            error = exc


def _log(log: Any, message: str, *args: Any) -> None:
    if log is not None:
        log.info(message, *args)


def _mask(*values: Any) -> None:
    from airflow.sdk.log import mask_secret

    for value in values:
        if value:
            mask_secret(value)


async def _amask(*values: Any) -> None:
    from airflow.sdk.log import amask_secret

    for value in values:
        if value:
            await amask_secret(value)


# ---------------------------------------------------------------------------------------------
# The hook
# ---------------------------------------------------------------------------------------------


class OpenApiHook(BaseHook):
    """Call operations of an OpenAPI-described product through an ``autopilot_openapi`` connection.

    :param openapi_conn_id: the Airflow connection (base URL and credentials)
    :param spec: the product's OpenAPI document (``autopilot_provider.openapi.spec.Spec``); needed to
        pick the auth scheme and, without a host in the connection, the base URL
    :param request_timeout: seconds per HTTP request
    :param retries: re-sends after 429, 5xx and connection errors
    :param backoff: first wait between re-sends, doubled each time (``Retry-After`` wins)
    :param document_base_url: whether a connection without a host may use the document's server URL;
        False on the API server, which calls only hosts that a connection names
    """

    conn_name_attr = "openapi_conn_id"
    default_conn_name = "autopilot_openapi_default"
    conn_type = CONN_TYPE
    hook_name = "OpenAPI product (Autopilot)"

    def __init__(
        self,
        openapi_conn_id: str = default_conn_name,
        *,
        spec: Spec | None = None,
        request_timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        document_base_url: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.document_base_url = document_base_url
        self.openapi_conn_id = openapi_conn_id
        self.spec = spec
        self.request_timeout = request_timeout
        self.policy = RetryPolicy(retries=retries, backoff=backoff, max_backoff=max_backoff)

    @cached_property
    def credentials(self) -> Credentials:
        creds = Credentials.from_connection(self.get_connection(self.openapi_conn_id))
        _mask(*creds.secrets())
        return creds

    @property
    def base_url(self) -> str:
        if not self.document_base_url and self.credentials.host_url is None:
            raise OpenApiError(
                f"connection '{self.credentials.conn_id}' has no host; the Airflow API server calls only hosts that "
                "a connection names, never a server URL that only the OpenAPI document gives: set the connection's host"
            )
        return base_url(self.spec, self.credentials)

    def auth_for(self, operation: Operation) -> dict[str, Any]:
        """The auth material for ``operation`` (secrets already masked)."""
        if self.spec is None:
            raise OpenApiError("OpenApiHook needs the OpenAPI document to choose the auth scheme")
        auth = select_auth(self.spec, operation, self.credentials, self.base_url)
        _mask(*auth_secrets(auth))
        return auth

    def client(self) -> httpx.Client:
        return httpx.Client(timeout=self.request_timeout, verify=self.credentials.verify, follow_redirects=False)

    def run(self, operation: Operation, request: PreparedRequest) -> dict[str, Any]:
        """Send ``request`` (built for ``operation``); ``{status, headers, body, attempts}``."""
        auth = self.auth_for(operation)
        with self.client() as client:
            return send(
                client,
                request,
                self.base_url,
                auth,
                policy=self.policy,
                extra_headers=self.credentials.headers,
                log=self.log,
            )

    def trigger_material(self, operation: Operation) -> dict[str, Any]:
        """What a trigger needs to send requests itself (JSON-able; holds secrets: trigger kwargs are
        encrypted in Airflow's database)."""
        return {
            "base_url": self.base_url,
            "auth": self.auth_for(operation),
            "headers": dict(self.credentials.headers),
            "verify": self.credentials.verify,
            "request_timeout": self.request_timeout,
            "policy": asdict(self.policy),
        }

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's *Test* button: is the base URL reachable (any HTTP answer below 500)?"""
        try:
            url = self.base_url
            with self.client() as client:
                headers = self.credentials.headers if self.credentials.host_url else {}
                response = client.get(url, headers=headers)
        except Exception as exc:  # noqa: BLE001 - reported to the user
            return False, str(exc)
        ok = response.status_code < 500
        return ok, f"{url} answered HTTP {response.status_code}"
