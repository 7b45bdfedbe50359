"""Child of the orphan-sweep test: claims an endpoint's deliveries, says so, waits to be killed."""

from __future__ import annotations

import asyncio
import sys
import time

from consumers.delivery.postgres_ledger import PostgresLedger
from eventlog.storage.postgres import PostgresStorage


async def main(url: str, endpoint_id: str) -> None:
    storage = PostgresStorage(url)
    await storage.open()
    ledger = PostgresLedger(storage)
    await ledger.open()
    claimed = await ledger.claim(endpoint_id, "concurrent", time.time(), 1000)
    sys.stdout.write(f"{ledger.token} {len(claimed.rows)}\n")
    sys.stdout.flush()
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
