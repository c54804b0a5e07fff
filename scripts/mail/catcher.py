"""A local SMTP catcher: accepts every message on 127.0.0.1 and writes each to a folder as an
.eml file (the message as received, with Return-Path and X-Envelope-To headers added), so tests
and developers can read what SecondWind sent. Never relays anything anywhere.

    catcher.py --port PORT --dir FOLDER
"""

import argparse
import asyncio
import os
import signal
import time
import uuid

from aiosmtpd.controller import Controller


class Folder:
    def __init__(self, folder):
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):
        name = "%d-%s.eml" % (time.time_ns(), uuid.uuid4().hex[:8])
        head = "Return-Path: <%s>\r\nX-Envelope-To: %s\r\n" % (
            envelope.mail_from,
            ", ".join(envelope.rcpt_tos),
        )
        partial = os.path.join(self.folder, "." + name)
        with open(partial, "wb") as out:
            out.write(head.encode())
            out.write(envelope.original_content or envelope.content)
        # Appears whole or not at all.
        os.rename(partial, os.path.join(self.folder, name))
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(Folder(args.dir), hostname="127.0.0.1", port=args.port)
    controller.start()
    print("SMTP catcher on 127.0.0.1:%d writing to %s" % (args.port, args.dir), flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
