"""Security by default for `judge serve`.

* The server binds 127.0.0.1; `check_bind` refuses any other address without a token.
* Every write (POST, PUT, PATCH, DELETE) needs ``Authorization: Bearer <token>`` (compared in
  constant time) and the ``X-Judge-Client`` header, which a cross-site HTML form cannot send, so a
  page on another site cannot post to the service.
* The ``Host`` header must name an allowed host (DNS rebinding), and an ``Origin`` header, when
  present, must be this server's own.
* Without ``--token-file`` the server makes a random token and keeps it (mode 0600) in
  ``OUTPUTS/service-token``, where the command-line clients on this machine find it.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from judge.errors import ConfigError

CLIENT_HEADER = "x-judge-client"
TOKEN_FILE_NAME = "service-token"
TOKEN_ENV = "JUDGE_SERVICE_TOKEN"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token_file(path: Path) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigError(f"cannot read the token file ({err.strerror})", path=path) from None
    if len(token) < 16:
        raise ConfigError("the token file must hold a token of at least 16 characters", path=path)
    return token


def check_bind(host: str, token_file: Path | None) -> None:
    """Refuse a non-loopback bind without an explicit token."""
    if not is_loopback(host) and token_file is None:
        raise ConfigError(f"--host {host} is reachable from other machines: give --token-file "
                          "with a secret token (at least 16 characters), or bind 127.0.0.1")


def server_token(outputs: Path, token_file: Path | None) -> str:
    """The token writes need: from ``--token-file``, else made once and kept in the outputs folder."""
    if token_file is not None:
        return read_token_file(token_file)
    path = Path(outputs) / TOKEN_FILE_NAME
    if path.is_file():
        return read_token_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    return token


def client_token(token_file: Path | None = None, outputs: Path | None = None) -> str | None:
    """What a command-line client sends: ``--token-file``, ``$JUDGE_SERVICE_TOKEN``, or the local
    server's own token file under the outputs folder."""
    if token_file is not None:
        return read_token_file(token_file)
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    from judge.store import default_outputs_dir

    path = Path(outputs or default_outputs_dir()) / TOKEN_FILE_NAME
    return read_token_file(path) if path.is_file() else None


def token_ok(header: str | None, token: str) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def host_name(host_header: str) -> str:
    """``example.org:8750`` -> ``example.org``; ``[::1]:8750`` -> ``[::1]``."""
    if host_header.startswith("["):
        return host_header.split("]")[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def check_request(method: str, headers: dict[str, str], allowed_hosts: set[str],
                  token: str) -> tuple[int, str] | None:
    """``(status, reason)`` when the request must be refused, else None. ``headers``: lower-case."""
    host = headers.get("host", "")
    if host_name(host).lower() not in allowed_hosts:
        return 421, f"Host {host!r} is not served here"
    origin = headers.get("origin")
    if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
        return 403, "cross-origin request refused"
    if method in WRITE_METHODS:
        if not headers.get(CLIENT_HEADER):
            return 403, "writes need the X-Judge-Client header"
        if not token_ok(headers.get("authorization"), token):
            return 401, "writes need 'Authorization: Bearer <token>' (the server's token)"
    return None


def allowed_hosts_for(bind: str, extra: set[str] | None = None) -> set[str]:
    hosts = {"localhost", "127.0.0.1", "[::1]"}
    if not is_loopback(bind) and bind not in {"0.0.0.0", "::"}:
        hosts.add(bind.lower())
    if bind in {"0.0.0.0", "::"}:
        import socket

        hosts.update({socket.gethostname().lower(), socket.getfqdn().lower()})
    return hosts | {h.lower() for h in (extra or set())}
