"""Child of the orphan-sweep test: claims an endpoint's deliveries, says so, waits to be killed."""

from __future__ import annotations

import asyncio
import sys
import time

from consumers.delivery.ledger import ClaimRequest
from consumers.delivery.postgres_ledger import PostgresLedger
from eventlog.storage.postgres import PostgresStorage


async def main(url: str, endpoint_id: str) -> None:
    storage = PostgresStorage(url)
    await storage.open()
    ledger = PostgresLedger(storage)
    await ledger.open()
    claim = ClaimRequest(endpoint_id, "concurrent", 1000)
    (claimed,) = (await ledger.write((), (), [claim], time.time()))[1]
    sys.stdout.write(f"{ledger.token} {len(claimed.rows)}\n")
    sys.stdout.flush()
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
