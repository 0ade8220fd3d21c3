"""A minimal xend relocation responder for namespace tests: ``python xend_responder.py ADDR...``.

It answers ``(help)`` as xend 3.3-4.4 does and anything else with xend's
error line, on port 8002 of every address given, and prints ``ready``.
"""

from __future__ import annotations

import asyncio
import sys

HELP = b"(ok (help quit receive sslreceive))\n"
ERROR = (
    b"(err (type \"<class 'xen.xend.XendError.XendError'>\") (value 'Invalid operation: GET'))\n"
)


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        line = await asyncio.wait_for(reader.readline(), 5)
        writer.write(HELP if line.strip() == b"(help)" else ERROR)
        await writer.drain()
    except (OSError, TimeoutError):
        pass
    finally:
        writer.close()


async def main(addresses: list[str]) -> None:
    servers = [await asyncio.start_server(answer, a, 8002) for a in addresses]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
