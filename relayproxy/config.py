"""Loading and validating relayproxy's TOML config.

Theory of operation: the file is read once into plain dicts, then every section is checked
against a table of known keys (`_SECTIONS`) that carries each key's type and default. Any
problem raises `ConfigError` naming the key (``smtp.listen``) and what to do, so
`relayproxy check-config` and every other command can print one clear line. The result is a
tree of frozen dataclasses; nothing else in relayproxy reads the TOML.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHARING_LEVELS = ("metadata", "subject", "full")
SECURITY_MODES = ("tls", "starttls", "none")


class ConfigError(Exception):
    """The config file cannot be used; the message names the key and the fix."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class StorageSettings:
    database: Path
    blobs: Path


@dataclass(frozen=True)
class ProxySettings:
    listen: HostPort
    listen_tls: HostPort | None
    upstream: HostPort | None
    upstream_security: str


@dataclass(frozen=True)
class TlsSettings:
    cert: Path | None
    key: Path | None
    upstream_ca: Path | None

    @property
    def enabled(self) -> bool:
        return self.cert is not None


@dataclass(frozen=True)
class Member:
    login: str
    name: str
    addresses: tuple[str, ...]
    sharing: str


@dataclass(frozen=True)
class Settings:
    path: Path | None
    storage: StorageSettings
    imap: ProxySettings
    smtp: ProxySettings
    tls: TlsSettings
    web_listen: HostPort
    capture_unknown_logins: bool
    sync_history_days: int
    sync_key_file: Path | None
    enrichment_web: bool
    shutdown_timeout: float
    team_domains: tuple[str, ...]
    members: tuple[Member, ...]
    _by_login: dict[str, Member] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_login.update({m.login.lower(): m for m in self.members})

    def member(self, login: str) -> Member | None:
        """The team member a mail login names (case-insensitive), or None."""
        return self._by_login.get(login.strip().lower())

    def capture_login(self, login: str) -> str | None:
        """The member login to capture a session's mail for, or None to relay without capture."""
        found = self.member(login)
        if found is not None:
            return found.login
        return login.strip().lower() if self.capture_unknown_logins and login.strip() else None


# Each key: (type check, description of the expected type, default).
_Key = tuple[Callable[[Any], bool], str, Any]


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


_SECTIONS: dict[str, dict[str, _Key]] = {
    "storage": {
        "database": (_is_str, "a file path", "var/relayproxy.db"),
        "blobs": (_is_str, "a folder path", "var/blobs"),
    },
    "imap": {
        "listen": (_is_str, '"host:port"', "127.0.0.1:1143"),
        "listen_tls": (_is_str, '"host:port" or ""', ""),
        "upstream": (_is_str, '"host:port"', ""),
        "upstream_security": (_is_str, '"tls", "starttls" or "none"', "tls"),
    },
    "smtp": {
        "listen": (_is_str, '"host:port"', "127.0.0.1:1587"),
        "listen_tls": (_is_str, '"host:port" or ""', ""),
        "upstream": (_is_str, '"host:port"', ""),
        "upstream_security": (_is_str, '"tls", "starttls" or "none"', "starttls"),
    },
    "tls": {
        "cert": (_is_str, "a PEM file path", ""),
        "key": (_is_str, "a PEM file path", ""),
        "upstream_ca": (_is_str, "a PEM file path or \"\"", ""),
    },
    "web": {"listen": (_is_str, '"host:port"', "127.0.0.1:8080")},
    "capture": {"unknown_logins": (_is_bool, "true or false", False)},
    "sync": {
        "history_days": (_is_int, "a whole number of days", 365),
        "key_file": (_is_str, "a file path or \"\"", ""),
    },
    "enrichment": {"web": (_is_bool, "true or false", False)},
    "serve": {"shutdown_timeout": (_is_number, "a number of seconds", 30)},
    "team": {
        "domains": (_is_str_list, "a list of domain names", []),
        "members": (lambda v: isinstance(v, list), "a list of [[team.members]] tables", []),
    },
}

_MEMBER_KEYS: dict[str, _Key] = {
    "login": (_is_str, "the mail login, a string", None),
    "name": (_is_str, "a display name", ""),
    "addresses": (_is_str_list, "a list of email addresses", []),
    "sharing": (_is_str, '"metadata", "subject" or "full"', "metadata"),
}


def parse_hostport(key: str, value: str, default_port: int | None = None) -> HostPort:
    """Parse ``host:port`` (IPv6 as ``[::1]:port``); raise ConfigError naming `key`."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if text.startswith("[") and "]" in text:
        host, _, rest = text[1:].partition("]")
        sep, port_text = (":", rest[1:]) if rest.startswith(":") else ("", "")
    if not sep:
        if default_port is None:
            raise ConfigError(key, f'"{value}" has no port; write it as "host:port".')
        host, port_text = text, str(default_port)
    if not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ConfigError(key, f'"{value}" is not a valid "host:port" (port 0-65535).')
    return HostPort(host, int(port_text))


def _check_table(section: str, table: Any, keys: dict[str, _Key]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(section, "must be a table ([section]).")
    for name in table:
        if name not in keys:
            known = ", ".join(sorted(keys))
            raise ConfigError(f"{section}.{name}", f"unknown key; known keys here: {known}.")
    values: dict[str, Any] = {}
    for name, (check, expected, default) in keys.items():
        if name not in table:
            if default is None:
                raise ConfigError(f"{section}.{name}", "is required.")
            values[name] = default
            continue
        if not check(table[name]):
            raise ConfigError(f"{section}.{name}", f"must be {expected}, not {table[name]!r}.")
        values[name] = table[name]
    return values


def _path(base: Path, value: str) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _address(key: str, value: str) -> str:
    text = value.strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in text):
        raise ConfigError(key, f'"{value}" is not an email address.')
    return text


def _proxy(section: str, raw: dict[str, Any]) -> ProxySettings:
    security = raw["upstream_security"]
    if security not in SECURITY_MODES:
        raise ConfigError(f"{section}.upstream_security", f'must be "tls", "starttls" or "none", not "{security}".')
    upstream = None
    if raw["upstream"]:
        default = {"imap": {"tls": 993}, "smtp": {"tls": 465}}.get(section, {}).get(security)
        upstream = parse_hostport(f"{section}.upstream", raw["upstream"], default)
    return ProxySettings(
        listen=parse_hostport(f"{section}.listen", raw["listen"]),
        listen_tls=parse_hostport(f"{section}.listen_tls", raw["listen_tls"]) if raw["listen_tls"] else None,
        upstream=upstream,
        upstream_security=security,
    )


def _members(raw: list[Any], team_domains: tuple[str, ...]) -> tuple[Member, ...]:
    members: list[Member] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        section = f"team.members[{i}]"
        values = _check_table(section, entry, _MEMBER_KEYS)
        login = values["login"].strip()
        if not login:
            raise ConfigError(f"{section}.login", "must not be empty.")
        if login.lower() in seen:
            raise ConfigError(f"{section}.login", f'"{login}" is listed twice; give each member one entry.')
        seen.add(login.lower())
        if values["sharing"] not in SHARING_LEVELS:
            raise ConfigError(
                f"{section}.sharing", f'must be "metadata", "subject" or "full", not "{values["sharing"]}".'
            )
        addresses = [_address(f"{section}.addresses", a) for a in values["addresses"]]
        if not addresses and "@" in login:
            addresses = [_address(f"{section}.login", login)]
        name = values["name"].strip() or login.split("@")[0]
        members.append(Member(login.lower(), name, tuple(dict.fromkeys(addresses)), values["sharing"]))
    return tuple(members)


def parse(data: dict[str, Any], path: Path | None = None) -> Settings:
    """Validate a parsed TOML document into Settings; relative paths are relative to `path`'s folder."""
    for name in data:
        if name not in _SECTIONS:
            raise ConfigError(name, f"unknown section; known sections: {', '.join(_SECTIONS)}.")
    raw = {name: _check_table(name, data.get(name, {}), keys) for name, keys in _SECTIONS.items()}
    base = path.parent if path is not None else Path.cwd()
    team_domains = tuple(dict.fromkeys(d.strip().lower().lstrip("@") for d in raw["team"]["domains"]))
    for domain in team_domains:
        if "." not in domain or " " in domain:
            raise ConfigError("team.domains", f'"{domain}" is not a domain name like "example.com".')
    tls = TlsSettings(
        cert=_path(base, raw["tls"]["cert"]),
        key=_path(base, raw["tls"]["key"]),
        upstream_ca=_path(base, raw["tls"]["upstream_ca"]),
    )
    if (tls.cert is None) != (tls.key is None):
        missing = "tls.cert" if tls.cert is None else "tls.key"
        raise ConfigError(missing, "tls.cert and tls.key go together; set both or neither.")
    imap, smtp = _proxy("imap", raw["imap"]), _proxy("smtp", raw["smtp"])
    for section, proxy in (("imap", imap), ("smtp", smtp)):
        if proxy.listen_tls is not None and not tls.enabled:
            raise ConfigError(f"{section}.listen_tls", "needs a certificate: set tls.cert and tls.key, or remove it.")
        if proxy.upstream is not None and proxy.upstream in (proxy.listen, proxy.listen_tls):
            raise ConfigError(
                f"{section}.upstream",
                f"is relayproxy's own listening address {proxy.upstream}: it would relay to itself; "
                "set your mail provider's server.",
            )
    if raw["sync"]["history_days"] < 0:
        raise ConfigError("sync.history_days", "must be 0 or more.")
    if raw["serve"]["shutdown_timeout"] < 0:
        raise ConfigError("serve.shutdown_timeout", "must be 0 or more seconds.")
    database = _path(base, raw["storage"]["database"])
    blobs = _path(base, raw["storage"]["blobs"])
    if database is None:
        raise ConfigError("storage.database", "must name a file.")
    if blobs is None:
        raise ConfigError("storage.blobs", "must name a folder.")
    return Settings(
        path=path,
        storage=StorageSettings(database, blobs),
        imap=imap,
        smtp=smtp,
        tls=tls,
        web_listen=parse_hostport("web.listen", raw["web"]["listen"]),
        capture_unknown_logins=raw["capture"]["unknown_logins"],
        sync_history_days=raw["sync"]["history_days"],
        sync_key_file=_path(base, raw["sync"]["key_file"]),
        enrichment_web=raw["enrichment"]["web"],
        shutdown_timeout=float(raw["serve"]["shutdown_timeout"]),
        team_domains=team_domains,
        members=_members(raw["team"]["members"], team_domains),
    )


def load(path: str | Path) -> Settings:
    """Read and validate the config file at `path`."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"config file {file} does not exist; pass --config with the right path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"config file {file} cannot be read: {exc}.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"config file {file} is not valid TOML: {exc}.") from None
    return parse(data, file.resolve())


def explain(settings: Settings) -> str:
    """A short human summary of what a valid config will do (for check-config)."""
    lines = [f"config {settings.path}: valid."]
    lines.append(f"  database {settings.storage.database}, attachments in {settings.storage.blobs}")
    for name, proxy in (("IMAP", settings.imap), ("SMTP", settings.smtp)):
        up = f"{proxy.upstream} ({proxy.upstream_security})" if proxy.upstream else "no upstream set"
        tls = f", implicit TLS on {proxy.listen_tls}" if proxy.listen_tls else ""
        lines.append(f"  {name}: listens on {proxy.listen}{tls}, relays to {up}")
    if not settings.tls.enabled:
        lines.append("  no [tls]: no STARTTLS; plaintext sign-in accepted from loopback clients only")
    lines.append(f"  web site on http://{settings.web_listen}/")
    lines.append(f"  team domains: {', '.join(settings.team_domains) or '(none)'}")
    for m in settings.members:
        lines.append(f"  member {m.login} ({m.name}): {', '.join(m.addresses)}; shares {m.sharing}")
    return "\n".join(lines)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False
