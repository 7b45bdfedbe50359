"""Child process of the lease test: takes a lease, says so, then holds it until killed."""

from __future__ import annotations

import asyncio
import sys

from eventlog.storage.postgres import PostgresStorage


async def main(url: str, name: str) -> None:
    storage = PostgresStorage(url)
    await storage.open()
    lease = await storage.acquire_lease(name)
    sys.stdout.write("held\n" if lease is not None else "refused\n")
    sys.stdout.flush()
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
