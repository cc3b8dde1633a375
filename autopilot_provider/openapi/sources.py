"""Where OpenAPI documents may come from, and how much of them is read.

* **Files** (an Api definition's ``spec:``): a path relative to the definition, inside the definitions
  folder once symlinks are resolved, naming a regular file (no FIFO, device or directory) of at most
  :data:`MAX_DOCUMENT` bytes — :func:`spec_path`, :func:`spec_file_problem`, :func:`read_file`.
* **URLs** (an import): absolute ``http(s)`` only, fetched by :func:`fetch_url`. The host is resolved
  and *every* address it resolves to is checked; loopback, private (RFC 1918), unique-local,
  link-local, site-local, CGNAT, multicast, unspecified and reserved addresses (and IPv6 addresses that
  embed such an IPv4 address: IPv4-mapped, 6to4, Teredo, NAT64) are refused unless the :class:`Allowlist` (``[autopilot] fetch_allowlist``, read by the plugin and
  the CLI and passed down) names the host or a network holding the address. The connection goes to
  the address that was checked (the URL keeps its host for the ``Host`` header and TLS SNI), so a
  second DNS answer cannot redirect it; redirects are followed by hand, at most
  :data:`MAX_REDIRECTS`, each hop checked the same way; the body is read with a byte cap, with
  connect and read timeouts and an overall deadline (checked before every hop, every address and
  every chunk), and without proxies from the environment.

  Every failure to reach a server (no such host, refused, reset, TLS, timeout) is the same
  :class:`Unreachable` message, so that the answer is no port scanner. A refused address
  (:class:`NotAllowed`) says so — that reveals configuration, not what listens where.

Nothing here imports Airflow.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urljoin, urlsplit

from autopilot_provider.definitions.errors import Refused
from autopilot_provider.definitions.models import spec_reference_problem

#: Largest document accepted (bytes), by file or by URL.
MAX_DOCUMENT = 64 * 1024 * 1024
MAX_REDIRECTS = 5
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
#: The whole fetch (every hop, every read) ends by then: a server trickling bytes cannot hold it longer.
TOTAL_TIMEOUT = 120.0
_REDIRECTS = {301, 302, 303, 307, 308}
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SourceError(Refused):
    """A document that is not read; ``status`` is what the REST API answers."""

    status = 400


class NotAllowed(SourceError):
    """The source is of a form, or at an address, that is not read (422)."""

    status = 422


class Unreachable(SourceError):
    """The server could not be reached or did not answer in time: one message for every cause."""

    status = 400


class Unsuccessful(SourceError):
    """The server answered with an HTTP error status."""

    status = 400


class TooLarge(SourceError):
    status = 422


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def spec_path(root: Path | str, definition: str, spec: str) -> Path:
    """The document an Api definition at ``definition`` (relative to ``root``) names, symlinks
    resolved; :class:`NotAllowed` when it is no relative path or lies outside the folder."""
    problem = spec_reference_problem(spec)
    if problem:
        raise NotAllowed(f"spec {problem}")
    base = Path(os.path.realpath(root))
    target = Path(os.path.realpath(base / definition)).parent / spec
    real = Path(os.path.realpath(target))
    if real == base or base not in real.parents:
        raise NotAllowed(f"spec {spec!r} lies outside the definitions folder (symlinks and '..' are resolved)")
    return real


def spec_file_problem(root: Path | str, definition: str, spec: str, *, limit: int = MAX_DOCUMENT) -> str | None:
    """What is wrong with an Api's ``spec:`` as a file (None when nothing is, or when it does not
    exist yet: that is reported where the document is used)."""
    try:
        path = spec_path(root, definition, spec)
    except NotAllowed as exc:
        return exc.message
    try:
        info = os.stat(path)
    except OSError:
        return None
    return _file_problem(spec, info, limit)


def _file_problem(name: str, info: os.stat_result, limit: int) -> str | None:
    if not stat.S_ISREG(info.st_mode):
        return f"spec {name!r} is not a regular file"
    if info.st_size > limit:
        return f"spec {name!r} is larger than {limit} bytes"
    return None


def read_file(path: Path | str, *, limit: int = MAX_DOCUMENT) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes. Opened without blocking and checked on
    the open descriptor, so a FIFO or device put there is refused instead of read (or waited on)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        problem = _file_problem(str(path), os.fstat(fd), limit)
        if problem:
            raise NotAllowed(problem.removeprefix("spec "))
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:  # it grew since fstat
                raise TooLarge(f"{path} is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# URLs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allowlist:
    """Host names and networks the API server may fetch from although they are internal."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str | Iterable[str] | None) -> Allowlist:
        """From ``"docs.internal, 10.1.0.0/16, 127.0.0.1"`` (comma or whitespace separated); an IP
        address is a network of one. ValueError names a malformed entry."""
        items = re.split(r"[,\s]+", text) if isinstance(text, str) else list(text or [])
        hosts, networks = set(), []
        for item in (i.strip() for i in items):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9\-.]*[A-Za-z0-9])?$", item):
                raise ValueError(f"fetch_allowlist entry {item!r} is neither a host name nor an IP network")
            hosts.add(item.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IpAddress) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        return any(address.version == net.version and address in net for net in self.networks)


_CGNAT = ipaddress.ip_network("100.64.0.0/10")
#: NAT64's well-known prefix: the last 32 bits are the IPv4 address a NAT64 gateway connects to.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, 6to4, Teredo client, NAT64)."""
    if address.ipv4_mapped is not None:
        return "", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4 ", address.sixtofour
    if address.teredo is not None:
        return "Teredo ", address.teredo[1]
    if address in _NAT64:
        return "NAT64 ", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def internal_kind(address: IpAddress) -> str | None:
    """What kind of internal address this is (None for a public one). An IPv6 address that embeds an
    IPv4 address (IPv4-mapped, 6to4 ``2002::/16``, Teredo ``2001::/32``, NAT64 ``64:ff9b::/96``) is
    as internal as the IPv4 address it reaches; site-local ``fec0::/10`` is internal."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            kind = internal_kind(embedded[1])
            if kind or not embedded[0]:
                return f"{embedded[0]}{kind}" if kind else None
        if address.is_site_local:
            return "site-local"
    for kind, flag in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    ):
        if flag:
            return kind
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "shared (CGNAT)"
    if not address.is_global:
        return "non-public"
    return None


def check_url(url: str, field: str = "url") -> SplitResult:
    """An absolute http(s) URL with a host, without credentials; NotAllowed otherwise."""
    parts = urlsplit(url.strip()) if isinstance(url, str) else None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise NotAllowed(
            f"{field} must be an absolute http:// or https:// URL, got {url!r} "
            "(the API server reads no local files: send the document as content)"
        )
    if parts.username is not None or parts.password is not None:
        raise NotAllowed(f"{field} must not carry credentials")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise NotAllowed(f"{field} has an invalid port: {url!r}") from None
    return parts


def resolve(parts: SplitResult, allowlist: Allowlist) -> list[IpAddress]:
    """Every address of the URL's host, each one checked; Unreachable when the name does not resolve."""
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise Unreachable("") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))
    if not addresses:
        raise Unreachable("")
    for address in addresses:
        kind = internal_kind(address)
        if kind and not allowlist.allows(host, address):
            raise NotAllowed(
                f"{host} is a {kind} address (or resolves to one): the API server fetches from such "
                "addresses only when [autopilot] fetch_allowlist names the host or its network"
            )
    return addresses


def fetch_url(
    url: str,
    *,
    allowlist: Allowlist | None = None,
    limit: int = MAX_DOCUMENT,
    max_redirects: int = MAX_REDIRECTS,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
    total_timeout: float = TOTAL_TIMEOUT,
) -> bytes:
    """GET an http(s) URL as described in the module docstring; at most ``limit`` bytes."""
    import httpx

    allowlist = allowlist or Allowlist()
    unreachable = f"could not fetch the document from {url}"
    timeout = httpx.Timeout(connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout)
    current = url
    deadline = time.monotonic() + total_timeout
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _hop in range(max_redirects + 1):
            if time.monotonic() >= deadline:
                raise Unreachable(unreachable)
            parts = check_url(current)
            try:
                addresses = resolve(parts, allowlist)
            except Unreachable:
                raise Unreachable(unreachable) from None
            for address in addresses:
                if time.monotonic() >= deadline:  # a host with many unresponsive addresses ends in time too
                    raise Unreachable(unreachable)
                try:
                    with client.stream("GET", **_pinned(parts, address)) as response:
                        if response.status_code in _REDIRECTS and response.headers.get("location"):
                            current = urljoin(current, response.headers["location"])
                            break
                        if response.status_code >= 400:
                            raise Unsuccessful(f"GET {url} answered {response.status_code}")
                        chunks, size = [], 0
                        for chunk in response.iter_bytes():
                            size += len(chunk)
                            if size > limit:
                                raise TooLarge(f"{url} is larger than {limit} bytes")
                            if time.monotonic() > deadline:
                                raise Unreachable(unreachable)
                            chunks.append(chunk)
                        return b"".join(chunks)
                except (httpx.ConnectError, httpx.ConnectTimeout):
                    continue  # the next address of the host, if it has one
                except httpx.HTTPError:
                    raise Unreachable(unreachable) from None
            else:
                raise Unreachable(unreachable)
    raise NotAllowed(f"{url} redirects more than {max_redirects} times")


def _pinned(parts: SplitResult, address: IpAddress) -> dict:
    """httpx arguments that reach ``address`` while the server sees the URL's host (Host, SNI)."""
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal + (f":{parts.port}" if parts.port else "")
    target = parts._replace(netloc=netloc, fragment="").geturl()
    host = parts.hostname or ""
    host_header = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    extensions = {"sni_hostname": host} if parts.scheme.lower() == "https" else {}
    return {"url": target, "headers": {"Host": host_header}, "extensions": extensions}


__all__ = [
    "MAX_DOCUMENT",
    "Allowlist",
    "NotAllowed",
    "SourceError",
    "TooLarge",
    "Unreachable",
    "Unsuccessful",
    "check_url",
    "fetch_url",
    "internal_kind",
    "read_file",
    "spec_file_problem",
    "spec_path",
    "spec_reference_problem",
]
