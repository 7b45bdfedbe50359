"""Child process of the outbox crash test: application transactions, each with its event.

``python outbox_child.py TARGET`` loops until SIGKILLed: in one transaction it
inserts a row into the application's table ``app_orders`` and appends the
matching event (id ``o<n>``) to stream ``orders``, with pauses inside the
transaction so a kill lands mid-way. On PostgreSQL, even rows use the
application's own asyncpg connection (``append(connection=)``) and odd rows
``log.transaction()``; on SQLite every row uses ``log.transaction()``.
Prints ``ready``, then ``begin <n>`` and ``commit <n>`` around each transaction.
"""

from __future__ import annotations

import asyncio
import random
import sys

from eventlog import EventLog, NewEvent


async def main(target: str) -> None:
    pg = target.startswith("postgresql://")
    mark = "$1" if pg else "?"
    async with EventLog.open(target, retention_interval=0) as log:
        async with log.transaction() as txn:
            await txn.execute("CREATE TABLE IF NOT EXISTS app_orders (id bigint PRIMARY KEY)")
            [(last,)] = await txn.execute("SELECT coalesce(max(id), 0) FROM app_orders")
        n = int(last) + 1
        app = None
        if pg:
            import asyncpg

            app = await asyncpg.connect(target)
        print("ready", flush=True)
        while True:
            pause = random.random() * 0.01
            print(f"begin {n}", flush=True)
            if app is not None and n % 2 == 0:
                async with app.transaction():
                    await app.execute("INSERT INTO app_orders (id) VALUES ($1)", n)
                    await asyncio.sleep(pause)
                    await log.append("orders", {"n": n}, type="order", id=f"o{n}", connection=app)
                    await asyncio.sleep(pause)
            else:
                async with log.transaction() as txn:
                    await txn.execute(f"INSERT INTO app_orders (id) VALUES ({mark})", n)
                    await asyncio.sleep(pause)
                    batch = [NewEvent(type="order", data={"n": n}, id=f"o{n}")]
                    await txn.append_batch("orders", batch)
                    await asyncio.sleep(pause)
            print(f"commit {n}", flush=True)
            n += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
