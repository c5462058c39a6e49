"""A real SMTP receiver for tests whose side effect is mail sent by another process (a Celery
worker): it speaks enough SMTP for Django's SMTP backend and keeps every message it accepted.

    with smtp_receiver(hold_from=2) as mailbox:       # the 2nd connection waits at the greeting
        ... worker env EMAIL_HOST=127.0.0.1, EMAIL_PORT=mailbox.port ...
        wait_for(lambda: mailbox.connections >= 2)    # the sender is mid-send: kill it now
        mailbox.release()

A held connection gets no greeting, so its sender cannot have sent anything yet: killing the
sender then is killing it mid-task before its side effect.
"""

import email
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message


@dataclass
class Mailbox:
    port: int = 0
    hold_from: int | None = None
    connections: int = 0
    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()

    def received(self) -> list[tuple[str, str]]:
        """(subject, recipient) of every message accepted, in order."""
        with self.lock:
            return [(str(make_header(decode_header(m["Subject"]))), m["To"]) for m in self.messages]


class _Handler(socketserver.StreamRequestHandler):
    timeout = 60

    def handle(self) -> None:
        box: Mailbox = self.server.mailbox
        with box.lock:
            box.connections += 1
            number = box.connections
        if box.hold_from is not None and number >= box.hold_from:
            box.released.wait(timeout=120)
        self.reply("220 test ESMTP")
        while line := self.rfile.readline():
            verb = line.decode("ascii", "replace").strip().split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-test", "250 8BITMIME")
            elif verb == "DATA":
                self.reply("354 go ahead")
                self.accept(self.read_data(), box)
                self.reply("250 accepted")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                self.reply("250 ok")

    def read_data(self) -> bytes:
        lines = []
        while (line := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines)

    def accept(self, data: bytes, box: Mailbox) -> None:
        with box.lock:
            box.messages.append(email.message_from_bytes(data))

    def reply(self, *lines: str) -> None:
        self.wfile.write("".join(f"{line}\r\n" for line in lines).encode("ascii"))


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def smtp_receiver(*, hold_from: int | None = None) -> Iterator[Mailbox]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.mailbox = Mailbox(port=server.server_address[1], hold_from=hold_from)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.mailbox
    finally:
        server.mailbox.release()
        server.shutdown()
        server.server_close()
