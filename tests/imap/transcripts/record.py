"""Record a real IMAP session with Dovecot into dovecot.json (run by hand to regenerate).

    .venv/bin/python -m tests.imap.transcripts.record

Starts a throwaway Dovecot, seeds a mailbox, runs an imaplib session (and one hand-written
pipelined exchange) through a recording byte relay, and writes the ordered list of
[direction, bytes-as-latin-1] pairs. The parser tests replay it.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import socket
import tempfile
import threading
from pathlib import Path

from tests.imap.messages import message
from tests.peers.certs import make_certs
from tests.peers.dovecot import start_dovecot

HERE = Path(__file__).parent


class Recorder:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.steps: list[tuple[str, bytes]] = []
        self.port = 0
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            ur, uw = await asyncio.open_connection(*self.upstream)

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, tag: str) -> None:
                while data := await src.read(65536):
                    self.steps.append((tag, data))
                    dst.write(data)
                    await dst.drain()
                dst.close()

            await asyncio.gather(pipe(reader, uw, "C"), pipe(ur, writer, "S"))

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        await asyncio.Event().wait()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dovecot = start_dovecot(make_certs(Path(tmp) / "tls"))
        try:
            dovecot.add_user("alice@example.com", "alicepw")
            dovecot.append("alice@example.com", [message(i, size=1500) for i in range(3)])
            recorder = Recorder((dovecot.host, dovecot.port))
            threading.Thread(target=recorder.run, daemon=True).start()
            recorder.ready.wait()
            c = imaplib.IMAP4("127.0.0.1", recorder.port)
            c.capability()
            c.login("alice@example.com", "alicepw")
            c.list()
            c.select("INBOX")
            c.fetch("1", "(UID FLAGS BODY.PEEK[])")
            c.uid("FETCH", "1:*", "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO CC DATE)])")
            c.fetch("2", "(ENVELOPE BODY.PEEK[HEADER] BODY.PEEK[]<0.100>)")
            c.fetch("3", "(RFC822)")
            c.fetch("1:3", "(BINARY.PEEK[1] RFC822.HEADER)")
            c.append("Sent", "(\\Seen)", None, message(10, size=800))
            c.append("Drafts", None, None, message(11, size=300, attachment=False))
            c.noop()
            c.logout()
            # A pipelined exchange with LITERAL+ and a literal login, as other clients send.
            s = socket.create_connection(("127.0.0.1", recorder.port))
            f = s.makefile("rb")
            f.readline()
            body = message(12, size=400, attachment=False)
            s.sendall(
                b"a1 LOGIN {17+}\r\nalice@example.com {7+}\r\nalicepw\r\n"
                b"a2 SELECT INBOX\r\n"
                b"a3 APPEND Sent (\\Seen) {%d+}\r\n%s\r\n" % (len(body), body)
                + b"a4 UID FETCH 1:* (UID BODY.PEEK[HEADER] BODY.PEEK[TEXT])\r\n"
                b"a5 LOGOUT\r\n"
            )
            while line := f.readline():
                if line.startswith(b"a5 "):
                    break
            s.close()
            c2 = imaplib.IMAP4("127.0.0.1", recorder.port)
            c2.login("alice@example.com", "alicepw")
            c2.select("INBOX")
            tag = c2._new_tag()
            c2.send(tag + b" IDLE\r\n")
            assert c2.readline().startswith(b"+")
            dovecot.deliver("alice@example.com", message(20, size=600))
            pushed = c2.readline()
            assert b"EXISTS" in pushed, pushed
            c2.send(b"DONE\r\n")
            while not c2.readline().startswith(tag):
                pass
            c2.logout()
            steps = [[d, b.decode("latin-1")] for d, b in recorder.steps]
            (HERE / "dovecot.json").write_text(json.dumps(steps, indent=0))
            print(f"recorded {len(steps)} steps")
        finally:
            dovecot.stop()


if __name__ == "__main__":
    main()
