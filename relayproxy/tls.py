"""TLS contexts: the certificate the proxy presents, and verification of upstream servers."""

from __future__ import annotations

import ssl

from relayproxy.config import ConfigError, Settings


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The context for client-facing TLS, or None without a [tls] section."""
    tls = settings.tls
    if tls.cert is None or tls.key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert, tls.key)
    except FileNotFoundError as exc:
        raise ConfigError("tls.cert", f"certificate file {exc.filename} does not exist.") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError("tls.cert", f"cannot load {tls.cert} with {tls.key}: {exc}.") from None
    return context


def upstream_context(settings: Settings) -> ssl.SSLContext:
    """A verifying client context for upstream servers (tls.upstream_ca adds a private CA)."""
    context = ssl.create_default_context()
    ca = settings.tls.upstream_ca
    if ca is not None:
        try:
            context.load_verify_locations(cafile=str(ca))
        except (FileNotFoundError, ssl.SSLError) as exc:
            raise ConfigError("tls.upstream_ca", f"cannot load CA file {ca}: {exc}.") from None
    return context
