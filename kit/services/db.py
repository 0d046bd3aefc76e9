"""A replicated SQLite database: one primary, and replicas that follow it in commit order.

    python -m kit.services.db --db /tmp/p.sqlite --port 7000                  # the primary
    python -m kit.services.db --db /tmp/eu.sqlite --primary http://10.1.0.2:7000   # a replica

The shape of the edge databases (Turso/libSQL, LiteFS, D1's read replicas): one
place takes every write, and copies near the users serve reads.

**Writes** go to the primary. Each `POST /exec` is one transaction: its statements
all apply or none do (a failing statement rolls back the ones before it). Its
commit gets the next **txid**, and the statements and their parameters are written
to a change log (`_kit_log`) in the same transaction, so the log holds exactly
the committed transactions, in commit order. A write sent to a replica is
forwarded to the primary, and the answer says so.

**Replication** is statement-based: each replica asks the primary for the log
after its own position every `ship_interval_s` (the shipping interval, set on the
control plane, like LiteFS's or a WAL shipper's), and applies each transaction
in order, with its new position, in one local transaction. So a replica's
**position** (the last txid it applied) says exactly which writes it has.
Replaying statements gives the same result only if they are deterministic, so a
write may not call `random()` or the date and time functions (which read the
clock): the client computes such values and sends them as parameters.

**Reads** (`POST /query`) run on a read-only connection, and every answer carries
the position it was read at. That is all a client needs to build session
consistency on top (a bookmark: "I wrote txid 42; read at 42 or later"), which
the kit leaves to the learner.

Data plane (the TCP port):

    POST /query      {"sql", "params"}: {"columns", "rows", "position", "role"}
    POST /exec       {"statements": [{"sql", "params"}, ...]} or one {"sql", "params"}:
                     {"txid", "changes", "position", "role"}
    GET  /position   {"role", "position", "head", "lag_tx", "since_contact_s",
                     "last_delay_s", "median_delay_s" (commit to apply, last 100 changes)}
                     (head: the primary's txid as this replica last saw it, from a
                     pull or a forwarded write)
    GET  /changes    ?after=N&limit=M (the primary's log): {"changes": [...], "head"}

Control plane (the root-only socket): `GET/POST /_kit/config` with
`ship_interval_s` and `paused` (a replica that stops following, to make lag),
and `GET /_kit/db/position`, the same as `/position` for the notebook.

**Bad input** gets a 4xx that says why, and changes nothing: malformed SQL or a
wrong number of parameters (400), a constraint broken (409), a write on
`/query`, several statements in one string, more than `MAX_STATEMENTS`. SQL comes
from the network and this service runs as root, so an authorizer denies what
would reach outside the database (`ATTACH`, `VACUUM INTO`, every `PRAGMA`,
extensions) and the kit's own tables; a query runs for at most `QUERY_LIMIT_S`
and returns at most `MAX_ROWS` rows.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from kit.control import protocol
from kit.services.common import Log, Metrics, Served, json_error, make_apps, parser, serve

QUERY_LIMIT_S = 2.0
MAX_ROWS = 10_000
MAX_STATEMENTS = 100
MAX_DB_BYTES = 256 << 20  # anyone on the network may write: the file has a bound
CHANGES_PER_PULL = 500
DELAYS_KEPT = 100  # the last changes whose commit-to-apply delays make the median
# Functions whose result differs between the primary and a replay on a replica.
NOT_REPLAYABLE = {"random", "randomblob", "date", "time", "datetime", "julianday", "strftime"}
NOT_REPLAYABLE |= {"unixepoch", "current_date", "current_time", "current_timestamp"}
DENIED = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA}
DENIED |= {sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT}  # the kit's own


class BadSQL(ValueError):
    """A statement the database refused; `status` says whose fault and how (400, 409)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


Statement = tuple[str, Sequence[Any] | dict[str, Any]]


def _authorizer(writing: bool):
    """An authorizer for users' statements (sqlite3.Connection.set_authorizer)."""

    def decide(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
        if action in DENIED:
            return sqlite3.SQLITE_DENY
        if arg1 and arg1.startswith("_kit_"):
            return sqlite3.SQLITE_DENY
        if writing and action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in NOT_REPLAYABLE:
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    return decide


class Store:
    """The SQLite file: users' reads and writes, the change log, and the position."""

    def __init__(self, path: str, max_bytes: int = MAX_DB_BYTES) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)  # transactions are explicit
        self.db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        page = self.db.execute("PRAGMA page_size").fetchone()[0]
        self.db.execute(f"PRAGMA max_page_count = {max(1, max_bytes // page)}")  # a bounded file
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS _kit_log (txid INTEGER PRIMARY KEY, at REAL, statements)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS _kit_position (txid INTEGER)")
        if self.db.execute("SELECT count(*) FROM _kit_position").fetchone()[0] == 0:
            self.db.execute("INSERT INTO _kit_position VALUES (0)")
        self.reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        # A users' statement running past the deadline is interrupted. Between them it is
        # infinite: the kit's own statements (the position, the log) are never interrupted.
        self.deadline = math.inf
        for connection in (self.db, self.reader):
            connection.set_progress_handler(lambda: time.monotonic() > self.deadline, 10_000)

    @property
    def position(self) -> int:
        return self.db.execute("SELECT txid FROM _kit_position").fetchone()[0]

    def read(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> dict[str, Any]:
        """Run one read-only statement: its columns and rows (at most MAX_ROWS)."""
        self.deadline = time.monotonic() + QUERY_LIMIT_S
        self.reader.execute("BEGIN")  # the rows and the position from one snapshot
        try:
            position = self.reader.execute("SELECT txid FROM _kit_position").fetchone()[0]
            cursor = self._users(self.reader, [(sql, params)], writing=False)[0]
            rows = cursor.fetchmany(MAX_ROWS + 1)
        finally:
            self.deadline = math.inf
            self.reader.execute("ROLLBACK")
        if len(rows) > MAX_ROWS:
            raise BadSQL(f"more than {MAX_ROWS} rows: add a LIMIT or a WHERE")
        columns = [c[0] for c in cursor.description or ()]
        return {"columns": columns, "rows": [list(r) for r in rows], "position": position}

    def write(self, statements: list[Statement]) -> dict[str, Any]:
        """Apply the statements as one transaction; log it under the next txid."""
        self.deadline = time.monotonic() + QUERY_LIMIT_S
        self.db.execute("BEGIN IMMEDIATE")
        try:
            cursors = self._users(self.db, statements, writing=True)
            txid = self.position + 1
            logged = json.dumps([[sql, params] for sql, params in statements])
            self.db.execute("INSERT INTO _kit_log VALUES (?, ?, ?)", (txid, time.time(), logged))
            self.db.execute("UPDATE _kit_position SET txid = ?", (txid,))
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # SQLite ends some failed transactions itself (full)
                self.db.execute("ROLLBACK")
            raise
        finally:
            self.deadline = math.inf
        changes = sum(max(c.rowcount, 0) for c in cursors)  # DDL counts -1
        return {"txid": txid, "changes": changes, "position": txid}

    def changes_after(self, txid: int, limit: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT txid, at, statements FROM _kit_log WHERE txid > ? ORDER BY txid LIMIT ?",
            (txid, limit),
        )
        return [{"txid": t, "at": at, "statements": json.loads(s)} for t, at, s in rows]

    def apply(self, change: dict[str, Any]) -> None:
        """Replay one of the primary's transactions, strictly the next one, atomically."""
        if change["txid"] != self.position + 1:
            raise RuntimeError(f"change {change['txid']} arrived at position {self.position}")
        self.deadline = time.monotonic() + QUERY_LIMIT_S
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in change["statements"]:
                self.db.execute(sql, params)
            self.db.execute("UPDATE _kit_position SET txid = ?", (change["txid"],))
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # SQLite ends some failed transactions itself (full)
                self.db.execute("ROLLBACK")
            raise
        finally:
            self.deadline = math.inf

    @staticmethod
    def _users(
        connection: sqlite3.Connection, statements: list[Statement], writing: bool
    ) -> list[sqlite3.Cursor]:
        """Run users' statements under the authorizer; their errors become BadSQL."""
        connection.set_authorizer(_authorizer(writing))
        try:
            return [connection.execute(sql, params) for sql, params in statements]
        except sqlite3.IntegrityError as error:
            raise BadSQL(f"constraint failed: {error}", 409) from None
        except (sqlite3.Error, sqlite3.Warning, OverflowError) as error:
            if str(error) == "interrupted":
                raise BadSQL(f"the statement ran longer than {QUERY_LIMIT_S} s") from None
            reason = str(error)
            if isinstance(error, sqlite3.OperationalError) and "full" in reason:
                raise BadSQL(
                    f"the database is full ({MAX_DB_BYTES >> 20} MB at most)", 507
                ) from None
            if "not authorized" in reason or "authorization denied" in reason:
                reason += (
                    " (not allowed here: ATTACH, VACUUM INTO, PRAGMA, transactions, the kit's"
                    " tables, and in writes random and clock functions: pass such values)"
                )
            raise BadSQL(reason) from None
        finally:
            connection.set_authorizer(None)


def statements_of(body: Any) -> list[Statement]:
    """The statements of an /exec body, checked: [(sql, params), ...]."""
    if not isinstance(body, dict):
        raise BadSQL('send a JSON object: {"statements": [{"sql": ..., "params": [...]}]}')
    listed = body["statements"] if "statements" in body else [body]
    if not isinstance(listed, list) or not 0 < len(listed) <= MAX_STATEMENTS:
        raise BadSQL(f'"statements" must be a list of 1 to {MAX_STATEMENTS} statements')
    return [statement_of(item) for item in listed]


def statement_of(item: Any) -> Statement:
    if not isinstance(item, dict) or not isinstance(item.get("sql"), str):
        raise BadSQL('each statement is {"sql": "...", "params": [...] or {...}}')
    params = item.get("params", [])
    if not isinstance(params, list | dict):
        raise BadSQL('"params" must be a list (for ?) or an object (for :name)')
    values = params.values() if isinstance(params, dict) else params
    if any(isinstance(v, list | dict) for v in values):
        raise BadSQL('"params" hold numbers, strings and null, not lists or objects')
    return item["sql"], params


class DatabaseService:
    """The service: a primary, or a replica following `primary_url`."""

    def __init__(self, store: Store, primary_url: str | None, log: Log, metrics: Metrics) -> None:
        self.store, self.primary_url, self.log, self.metrics = store, primary_url, log, metrics
        self.role = "replica" if primary_url else "primary"
        self.config: dict[str, Any] = {"ship_interval_s": 0.1, "paused": False}
        self.head = store.position  # the primary's latest txid, as last seen
        self.contact = time.time()  # when the primary last answered
        self.last_delay_s: float | None = None  # commit to apply, of the last change applied
        self.delays: deque[float] = deque(maxlen=DELAYS_KEPT)  # and of the recent ones
        self.session: aiohttp.ClientSession | None = None

    # -- data plane -----------------------------------------------------------------

    async def query_route(self, request: web.Request) -> web.Response:
        sql, params = statement_of(await request.json())
        try:
            answer = self.store.read(sql, params)
        except BadSQL as error:
            return json_error(error.status, str(error))
        self.metrics.count("queries")
        return web.json_response({**answer, "role": self.role})

    async def exec_route(self, request: web.Request) -> web.Response:
        body = await request.json()
        statements = statements_of(body)
        if self.role == "replica":  # writes go to the primary
            self.metrics.count("forwarded")
            assert self.session is not None and self.primary_url is not None
            try:
                async with self.session.post(self.primary_url + "/exec", json=body) as answer:
                    forwarded = await answer.json()
            except (aiohttp.ClientError, TimeoutError) as error:
                return json_error(503, f"the primary did not answer: {type(error).__name__}")
            if isinstance(forwarded.get("txid"), int):  # the primary is at least there now
                self.head = max(self.head, forwarded["txid"])
            return web.json_response({**forwarded, "forwarded_by": "replica"}, status=answer.status)
        try:
            answer = self.store.write(statements)
        except BadSQL as error:
            return json_error(error.status, str(error))
        self.metrics.count("writes")
        self.head = answer["position"]
        return web.json_response({**answer, "role": self.role})

    async def position_route(self, request: web.Request) -> web.Response:
        position = self.store.position
        head = max(self.head, position)
        return web.json_response(
            {
                "role": self.role,
                "position": position,
                "head": head,
                "lag_tx": head - position,
                "since_contact_s": round(time.time() - self.contact, 3) if self.primary_url else 0,
                "last_delay_s": self.last_delay_s,
                "median_delay_s": statistics.median(self.delays) if self.delays else None,
            }
        )

    async def changes_route(self, request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0"))
        limit = min(int(request.query.get("limit", str(CHANGES_PER_PULL))), CHANGES_PER_PULL)
        changes = self.store.changes_after(after, limit)
        return web.json_response({"changes": changes, "head": self.store.position})

    # -- replication ----------------------------------------------------------------

    async def follow(self) -> None:
        """A replica's loop: fetch the log after our position, apply it in order, sleep."""
        assert self.session is not None
        while True:
            if not self.config["paused"]:
                try:
                    await self.pull()
                except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                    self.log("replication", "warning", reason=f"{type(error).__name__}: {error}")
                except sqlite3.Error as error:  # a change that does not replay: stop here
                    self.log("replication_stopped", "error", reason=str(error))
                    self.config["paused"] = True
            await asyncio.sleep(float(self.config["ship_interval_s"]))

    async def pull(self) -> None:
        assert self.session is not None
        url = f"{self.primary_url}/changes?after={self.store.position}"
        async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as answer:
            batch = await answer.json()
        if self.config["paused"]:  # paused while this pull was on its way: apply nothing
            return  # (it may hold changes committed after the pause; resume pulls them again)
        self.contact = time.time()
        for change in batch["changes"]:
            self.store.apply(change)
            self.last_delay_s = round(time.time() - change["at"], 4)
            self.delays.append(self.last_delay_s)
            self.metrics.count("applied")
        self.head = max(self.head, int(batch["head"]))

    async def client(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: the HTTP client, and the replica's loop."""
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        follower = asyncio.create_task(self.follow()) if self.primary_url else None
        yield
        if follower:
            follower.cancel()
        await self.session.close()

    # -- control plane --------------------------------------------------------------

    async def config_route(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            changes = await request.json()
            if not isinstance(changes, dict) or set(changes) - set(self.config):
                raise ValueError(f"config keys are {sorted(self.config)}")
            interval = changes.get("ship_interval_s", self.config["ship_interval_s"])
            if not isinstance(interval, int | float) or not 0.001 <= interval <= 600:
                raise ValueError("ship_interval_s must be between 0.001 and 600 seconds")
            self.config.update(changes)
            self.log("config", config=self.config)
        return web.json_response(self.config)


def main(argv: list[str] | None = None) -> None:
    cli = parser("db", "A replicated SQLite database: a primary, or a replica of one.")
    cli.add_argument("--db", required=True, help="the SQLite file")
    cli.add_argument("--primary", help="the primary's URL: this one is a replica of it")
    args = cli.parse_args(argv)
    log = Log("db")
    role = "replica" if args.primary else "primary"
    metrics = Metrics("db", ("queries", "writes", "forwarded", "applied"), role=role)
    database = DatabaseService(Store(args.db), args.primary, log, metrics)
    served = Served.of(args)
    planes = make_apps("db", served, metrics, log, role=role)
    planes.data.cleanup_ctx.append(database.client)
    data = planes.data.router
    data.add_post("/query", database.query_route)
    data.add_post("/exec", database.exec_route)
    data.add_get("/position", database.position_route)
    data.add_get("/changes", database.changes_route)
    planes.control.router.add_route("*", protocol.CONFIG, database.config_route)
    planes.control.router.add_get(protocol.DB_POSITION, database.position_route)
    serve(planes, served, log)


if __name__ == "__main__":
    main()
