#!/usr/bin/python3
"""A real SMTP receiver for email_sender_test: Debian's aiosmtpd on 127.0.0.1.

Run with /usr/bin/python3 (the only interpreter that imports aiosmtpd):

    smtp_receiver.py --dir DIR [--mode starttls|tls|none] [--user U --password P]

It makes a self-signed certificate for "localhost" (SAN DNS:localhost,
IP:127.0.0.1) in DIR with the openssl CLI unless DIR/cert.pem exists, binds
an ephemeral port, writes it to DIR/port (atomically) and prints "ready
PORT". Every accepted message is appended to DIR/messages.jsonl as one JSON
object: envelope (mail_from, rcpt_tos), whether the session was on TLS and
authenticated, the raw message, and the decoded subject, headers, text and
HTML parts. RCPT to an address starting with "refuse" gets 550.
"""

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
from email import policy
from email.parser import BytesParser

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class Handler:
    def __init__(self, out):
        self.out = out

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("refuse"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = BytesParser(policy=policy.default).parsebytes(envelope.content)
        text = html = None
        for part in msg.walk():
            if part.get_content_type() == "text/plain" and text is None:
                text = part.get_content()
            elif part.get_content_type() == "text/html" and html is None:
                html = part.get_content()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
            "raw": envelope.content.decode("utf-8", "replace"),
            "subject": str(msg["subject"]),
            "headers": {k.lower(): str(v) for k, v in msg.items()},
            "content_type": msg.get_content_type(),
            "text": text,
            "html": html,
        }
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 2.0.0 OK queued"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--mode", choices=["starttls", "tls", "none"], default="starttls")
    ap.add_argument("--user")
    ap.add_argument("--password")
    args = ap.parse_args()

    cert, key = make_cert(args.dir)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == args.user
              and auth_data.password.decode() == args.password)
        return AuthResult(success=ok, handled=False)

    handler = Handler(os.path.join(args.dir, "messages.jsonl"))

    def factory():
        kw = {"hostname": "localhost", "auth_require_tls": True}
        if args.user:
            kw["authenticator"] = authenticator
        if args.mode == "starttls":
            return SMTP(handler, tls_context=ctx, require_starttls=True, **kw)
        return SMTP(handler, **kw)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(factory, "127.0.0.1", 0, ssl=ctx if args.mode == "tls" else None))
    port = server.sockets[0].getsockname()[1]
    tmp = os.path.join(args.dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(port))
    os.rename(tmp, os.path.join(args.dir, "port"))
    print("ready", port, flush=True)
    loop.run_forever()


if __name__ == "__main__":
    sys.exit(main())
