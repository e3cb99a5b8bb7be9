"""A bare SMTP client for transcript-style tests: send exact bytes, read exact replies."""

from __future__ import annotations

import asyncio
import ssl
from base64 import b64encode


class Wire:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, *, tls: ssl.SSLContext | None = None) -> Wire:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
        )
        return cls(reader, writer)

    async def reply(self, timeout: float = 5.0) -> tuple[int, list[str]]:
        """One whole reply: its code and its text lines."""
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), timeout)
            if not raw:
                raise ConnectionError(f"connection closed; reply so far: {lines}")
            line = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), lines

    async def line(self) -> str:
        """One reply as its raw first line ("250 2.1.0 Ok")."""
        code, lines = await self.reply()
        return f"{code} {lines[-1]}".rstrip()

    def send(self, data: bytes | str) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)

    async def cmd(self, command: str | bytes) -> tuple[int, list[str]]:
        raw = command.encode("utf-8", "surrogateescape") if isinstance(command, str) else command
        self.send(raw + b"\r\n")
        return await self.reply()

    async def starttls(self, context: ssl.SSLContext) -> None:
        code, _ = await self.cmd("STARTTLS")
        assert code == 220
        await self.writer.start_tls(context, server_hostname="localhost")

    async def login(self, user: str, password: str) -> tuple[int, list[str]]:
        token = b64encode(f"\0{user}\0{password}".encode()).decode()
        return await self.cmd(f"AUTH PLAIN {token}")

    async def closed(self, timeout: float = 5.0) -> bool:
        """True once the server has closed the connection."""
        data = await asyncio.wait_for(self.reader.read(), timeout)
        return data == b""

    def close(self) -> None:
        self.writer.close()


async def session(
    port: int, *, tls: ssl.SSLContext | None = None, ehlo: str = "client.test"
) -> Wire:
    """Connect, read the greeting, say EHLO."""
    wire = await Wire.open(port, tls=tls)
    code, _ = await wire.reply()
    assert code == 220
    code, _ = await wire.cmd(f"EHLO {ehlo}")
    assert code == 250
    return wire
