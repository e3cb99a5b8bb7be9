"""relayproxy: relationship intelligence for teams, captured at the wire by a mail proxy."""

__version__ = "0.1.0"
