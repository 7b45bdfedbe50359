"""Child process of the outbox crash test: application transactions, each with its event.

``python outbox_child.py URL`` loops forever (until SIGKILLed): in one
transaction it inserts a row into the application's table ``app_orders`` and
appends the matching event (id ``o<n>``) to stream ``orders``, with pauses
inside the transaction so a kill lands mid-way. Even rounds use the
application's own asyncpg connection (``append(connection=)``), odd rows
``log.transaction()``. Prints ``ready`` once running.
"""

from __future__ import annotations

import asyncio
import random
import sys

import asyncpg

from eventlog import EventLog, NewEvent


async def main(url: str) -> None:
    app = await asyncpg.connect(url)
    await app.execute("CREATE TABLE IF NOT EXISTS app_orders (id bigint PRIMARY KEY)")
    n = int(await app.fetchval("SELECT coalesce(max(id), 0) FROM app_orders")) + 1
    async with EventLog.open(url, retention_interval=0) as log:
        print("ready", flush=True)
        while True:
            pause = random.random() * 0.01
            if n % 2 == 0:
                async with app.transaction():
                    await app.execute("INSERT INTO app_orders (id) VALUES ($1)", n)
                    await asyncio.sleep(pause)
                    await log.append("orders", {"n": n}, type="order", id=f"o{n}", connection=app)
                    await asyncio.sleep(pause)
            else:
                async with log.transaction() as txn:
                    await txn.execute("INSERT INTO app_orders (id) VALUES ($1)", n)
                    await asyncio.sleep(pause)
                    batch = [NewEvent(type="order", data={"n": n}, id=f"o{n}")]
                    await txn.append_batch("orders", batch)
                    await asyncio.sleep(pause)
            n += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
