"""The outbox: an application row and its event, committed together or not at all.

Run: python docs/examples/outbox.py [events.db | postgresql://...]
"""

import asyncio
import sys
import tempfile
from pathlib import Path

from eventlog import EventLog


async def on_sqlite(log: EventLog) -> None:
    async with log.transaction() as txn:  # your tables live in the log's file
        await txn.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, total REAL)")
    async with log.transaction() as txn:
        await txn.execute("INSERT INTO orders (id, total) VALUES (?, ?)", 7, 9.5)
        await txn.append("orders", {"id": 7, "total": 9.5}, type="order.created")
    try:
        async with log.transaction() as txn:
            await txn.execute("INSERT INTO orders (id, total) VALUES (?, ?)", 8, 1.0)
            await txn.append("orders", {"id": 8}, type="order.created")
            raise RuntimeError("payment declined")
    except RuntimeError as exc:
        print("rolled back:", exc)
    async with log.transaction() as txn:
        print("rows:", await txn.execute("SELECT id, total FROM orders"))


async def on_postgres(log: EventLog, url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)  # the application's own connection
    await conn.execute("CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, total float8)")
    async with conn.transaction():
        await conn.execute("INSERT INTO orders (id, total) VALUES ($1, $2)", 7, 9.5)
        offset = await log.append(
            "orders", {"id": 7, "total": 9.5}, type="order.created", connection=conn
        )
        print("offset", offset, "visible yet:", bool(await log.read("orders")))
    print("rows:", [tuple(r) for r in await conn.fetch("SELECT id, total FROM orders")])
    await conn.close()


async def main(target: str) -> None:
    async with EventLog.open(target) as log:
        if target.startswith("postgresql://"):
            await on_postgres(log, target)
        else:
            await on_sqlite(log)
        print("events:", [(e.offset, e.type) for e in await log.read("orders")])


target = sys.argv[1] if len(sys.argv) > 1 else str(Path(tempfile.mkdtemp()) / "events.db")
if not target.startswith("postgresql://") and Path(target).exists():
    sys.exit(f"{target} exists: this example needs a new database file")  # it inserts row 7
asyncio.run(main(target))
