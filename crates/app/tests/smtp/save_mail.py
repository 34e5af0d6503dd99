"""An aiosmtpd handler for the channel tests: keeps every message it receives.

    python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c save_mail.SaveMail DIRECTORY

(with this folder on PYTHONPATH). Message n is saved as DIRECTORY/000n.eml, as received, and
DIRECTORY/000n.json: the envelope and the message as Python's email package reads it
(subject decoded, addresses, Message-ID, and the body of every part by content type).
Both are complete before the server answers 250.
"""

import email
import email.policy
import itertools
import json
import os


class SaveMail:
    def __init__(self, directory):
        self.directory = directory
        self.numbers = itertools.count(1)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("SaveMail takes one argument: the directory to save messages in")
        return cls(args[0])

    def _write(self, name, data):
        path = os.path.join(self.directory, name)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.rename(path + ".tmp", path)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.numbers)
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = {}
        for part in message.walk():
            if part.get_content_maintype() != "multipart":
                parts[part.get_content_type()] = part.get_content()

        def addresses(header):
            value = message[header]
            return [a.addr_spec for a in value.addresses] if value is not None else []

        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["Subject"]),
            "from": addresses("From"),
            "to": addresses("To"),
            "cc": addresses("Cc"),
            "message_id": str(message["Message-ID"]),
            "auto_submitted": message["Auto-Submitted"],
            "in_reply_to": message["In-Reply-To"],
            "references": message["References"],
            "reply_to": addresses("Reply-To"),
            "content_type": message.get_content_type(),
            "parts": parts,
        }
        self._write(f"{n:04d}.eml", raw)
        self._write(f"{n:04d}.json", json.dumps(summary).encode())
        return f"250 OK saved as {n:04d}"
