"""The deterministic sample data set, saved queries and dashboard of a fresh local server."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster_iwatch.local.dashboards import Dashboards
    from dagster_iwatch.local.queries import Queries
    from dagster_iwatch.local.state import LocalState

TOKENS = ("ETH", "USDC", "WBTC", "DAI", "LINK")
START = date(2024, 1, 1)
DAYS = 91
N_TRANSFERS = 3000
_BASE_PRICE = {"ETH": 2300.0, "USDC": 1.0, "WBTC": 42000.0, "DAI": 1.0, "LINK": 15.0}

_TABLES = """
create table transfers (
    id INTEGER primary key, block_number INTEGER, block_time TIMESTAMP, block_date DATE, token TEXT,
    from_address VARCHAR, to_address VARCHAR, amount REAL, amount_usd REAL, is_contract BOOLEAN, note TEXT
);
create table prices (day DATE, token TEXT, price REAL);
create table transfer_meta (transfer_id INTEGER primary key, meta JSON);
create index transfers_block_date on transfers (block_date);
create index transfers_token on transfers (token);
"""


def _address(rng: random.Random) -> str:
    return "0x" + "".join(rng.choice("0123456789abcdef") for _ in range(40))


def build_data_source(path: Path) -> None:
    """Create the SQLite data source with `transfers`, `prices` and `transfer_meta` (fixed random seed)."""
    rng = random.Random(20240101)  # sample data, not secrets
    prices: dict[tuple[str, str], float] = {}
    price_rows: list[tuple[str, str, float]] = []
    for token in TOKENS:
        price = _BASE_PRICE[token]
        for d in range(DAYS):
            day = (START + timedelta(days=d)).isoformat()
            if token in ("USDC", "DAI"):
                price = round(1.0 + rng.uniform(-0.002, 0.002), 6)
            else:
                price = round(price * (1.0 + rng.gauss(0.0, 0.03)), 4)
            prices[(day, token)] = price
            price_rows.append((day, token, price))
    price_rows.sort()

    addresses = [_address(rng) for _ in range(60)]
    span = DAYS * 86400
    transfer_rows: list[tuple[Any, ...]] = []
    meta_rows: list[tuple[int, str]] = []
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(1, N_TRANSFERS + 1):
        offset = int((i - 1) * span / N_TRANSFERS) + rng.randrange(0, span // N_TRANSFERS)
        ts = start + timedelta(seconds=offset)
        day = ts.date().isoformat()
        token = rng.choice(TOKENS)
        amount = round(rng.lognormvariate(3.0, 1.5), 6)
        amount_usd = None if rng.random() < 0.05 else round(amount * prices[(day, token)], 2)
        is_contract = None if rng.random() < 0.05 else int(rng.random() < 0.3)
        note = None if rng.random() < 0.8 else rng.choice(["refund", "swap", "airdrop", "payroll", "gas top-up €"])
        transfer_rows.append(
            (
                i,
                19_000_000 + offset // 12,
                ts.strftime("%Y-%m-%d %H:%M:%S"),
                day,
                token,
                rng.choice(addresses),
                rng.choice(addresses),
                amount,
                amount_usd,
                is_contract,
                note,
            )
        )
        if i <= 50:
            meta = {"n": i, "tags": ["a", i % 3], "chain": rng.choice(["mainnet", "arbitrum", "optimism"])}
            meta_rows.append((i, json.dumps(meta)))

    conn = sqlite3.connect(str(path))
    try:
        conn.executescript(_TABLES)
        conn.executemany("insert into transfers values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", transfer_rows)
        conn.executemany("insert into prices values (?, ?, ?)", price_rows)
        conn.executemany("insert into transfer_meta values (?, ?)", meta_rows)
        conn.commit()
    finally:
        conn.close()


def _p(name: str, title: str, kind: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "title": title, "type": kind, "value": value, **extra}


_TOKEN_OPTIONS = "\n".join(TOKENS)

# (name, SQL, parameters, tags, description); ids are 1..N in this order.
SEED_QUERIES: list[tuple[str, str, list[dict[str, Any]], list[str], str]] = [
    ("All transfers", "select * from transfers order by id", [], ["raw", "transfers"], "Every transfer."),
    (
        "Transfers above min amount",
        "select id, block_time, token, amount from transfers where amount >= {{ min_amount }} order by id",
        [_p("min_amount", "Min amount", "number", 100)],
        ["param", "transfers"],
        "Transfers whose amount is at least a number.",
    ),
    (
        "Transfers by token (text)",
        "select id, block_time, token, amount from transfers where token = '{{ token }}' order by id",
        [_p("token", "Token", "text", "ETH")],
        ["param", "text"],
        "Unsafe: a free-text parameter.",
    ),
    (
        "Prices on day",
        "select day, token, price from prices where day = '{{ day }}' order by token",
        [_p("day", "Day", "date", "2024-02-29")],
        ["param", "prices"],
        "Every token's price on one day.",
    ),
    (
        "Daily volume in period",
        "select block_date, token, count(*) as n, sum(amount) as total from transfers"
        " where block_date between '{{ period.start }}' and '{{ period.end }}'"
        " group by block_date, token order by block_date, token",
        [_p("period", "Period", "date-range", {"start": "2024-01-01", "end": "2024-01-31"})],
        ["param", "transfers", "daily"],
        "Transfer count and volume per day and token, inclusive date range.",
    ),
    (
        "Transfers since datetime",
        "select id, block_time, token, amount from transfers where block_time >= datetime('{{ since }}') order by id",
        [_p("since", "Since", "datetime-local", "2024-03-01 12:00")],
        ["param", "transfers"],
        "Transfers at or after a moment.",
    ),
    (
        "Transfers by token (enum)",
        "select id, block_time, token, amount_usd from transfers where token = '{{ token }}' order by id",
        [_p("token", "Token", "enum", "ETH", enumOptions=_TOKEN_OPTIONS)],
        ["param", "enum"],
        "Transfers of one token picked from a list.",
    ),
    (
        "Counts for tokens (multi enum)",
        "select token, count(*) as n from transfers where token in ({{ tokens }}) group by token order by token",
        [
            _p(
                "tokens",
                "Tokens",
                "enum",
                ["ETH", "DAI"],
                enumOptions=_TOKEN_OPTIONS,
                multiValuesOptions={"prefix": "'", "suffix": "'", "separator": ","},
            )
        ],
        ["param", "enum"],
        "Transfer counts for several tokens.",
    ),
    (
        "Transfers for listed token",
        "select id, block_time, token, amount from transfers where token = '{{ token }}' order by id",
        [_p("token", "Token", "query", "ETH", queryId=12)],
        ["param", "query"],
        "Token picked from the results of query 12.",
    ),
    ("Broken query", "selec * fromm transfers", [], ["broken"], "Fails with a syntax error."),
    (
        "Slow query",
        "select sleep({{ seconds }}) as slept",
        [_p("seconds", "Seconds", "number", 30)],
        ["slow", "param"],
        "Sleeps on the server; cancellable.",
    ),
    ("Token list", "select distinct token from transfers order by token", [], ["raw", "tokens"], "All tokens."),
    (
        "All column types",
        "select t.id, t.amount, t.amount_usd, t.is_contract, t.block_date, t.block_time, t.token, t.note, m.meta"
        " from transfers t left join transfer_meta m on m.transfer_id = t.id where t.id <= 100 order by t.id",
        [],
        ["types"],
        "Integer, float, boolean, date, datetime, string, untyped text and JSON columns, with NULLs.",
    ),
    (
        "Empty result",
        "select * from transfers where id < 0",
        [],
        ["raw", "empty"],
        "Zero rows; the columns are kept.",
    ),
    (
        "Daily prices",
        "select day, token, price from prices order by day, token",
        [],
        ["raw", "prices", "daily"],
        "One price per token per day.",
    ),
    (
        "Transfers in window",
        "select id, block_time, token, amount from transfers"
        " where block_time >= datetime('{{ window.start }}') and block_time <= datetime('{{ window.end }}')"
        " order by id",
        [
            _p(
                "window",
                "Window",
                "datetime-range",
                {"start": "2024-01-01 00:00", "end": "2024-01-01 23:59"},
            )
        ],
        ["param", "transfers"],
        "Transfers between two moments, inclusive.",
    ),
    (
        "Generated rows",
        "with recursive seq(n) as (select 1 union all select n + 1 from seq where n < {{ n }})"
        " select n as id, n * 1.5 as amount, (n % 2 = 0) as is_contract,"
        " date('2024-01-01', '+' || (n % 91) || ' days') as block_date,"
        " datetime('2024-01-01', '+' || n || ' seconds') as block_time,"
        " case n % 5 when 0 then 'ETH' when 1 then 'USDC' when 2 then 'WBTC' when 3 then 'DAI' else 'LINK' end"
        " as token, 'row ' || n as note from seq",
        [_p("n", "Rows", "number", 1000)],
        ["param", "bench"],
        "n generated rows of typed columns.",
    ),
    (
        "Token volume on day",
        "select block_date, token, count(*) as n, sum(amount) as total from transfers"
        " where block_date = '{{ day }}' and token = '{{ token }}' group by block_date, token",
        [_p("day", "Day", "date", "2024-01-01"), _p("token", "Token", "enum", "ETH", enumOptions=_TOKEN_OPTIONS)],
        ["param", "transfers"],
        "Transfer count and volume of one token on one day.",
    ),
]

DASHBOARD_NAME = "Chain overview"
DASHBOARD_TEXT = "## Chain overview\nDaily prices and transfer volume from the local sample data."


def seed_metadata(state: LocalState, queries: Queries, dashboards: Dashboards) -> None:
    """Save the sample queries (ids 1..17), their charts and the dashboard, in one transaction."""
    # One transaction, so that a crash half-way leaves no queries behind to be seeded twice.
    with state.write_lock, state.store.transaction():
        for name, sql, defs, tags, description in SEED_QUERIES:
            q = queries.create(
                {
                    "name": name,
                    "query": sql,
                    "data_source_id": 1,
                    "description": description,
                    "options": {"parameters": defs},
                    "tags": tags,
                }
            )
            q["is_draft"] = False
            state.store.put("queries", q)
        dash = dashboards.create({"name": DASHBOARD_NAME})
        dash.update(is_draft=False, tags=["chain", "overview"])
        state.store.put("dashboards", dash)
        charts = [
            queries.create_visualization(
                {
                    "query_id": query_id,
                    "type": "CHART",
                    "name": name,
                    "options": {"globalSeriesType": kind, "columnMapping": {x: "x", y: "y"}},
                }
            )
            for query_id, name, kind, x, y in (
                (15, "Daily prices", "line", "day", "price"),
                (5, "Daily volume", "column", "block_date", "total"),
            )
        ]
        for viz_id, text, pos in (
            (charts[0]["id"], "", {"col": 0, "row": 0, "sizeX": 3, "sizeY": 8}),
            (charts[1]["id"], "", {"col": 3, "row": 0, "sizeX": 3, "sizeY": 8}),
            (None, DASHBOARD_TEXT, {"col": 0, "row": 8, "sizeX": 6, "sizeY": 2}),
        ):
            dashboards.create_widget(
                {
                    "dashboard_id": dash["id"],
                    "visualization_id": viz_id,
                    "options": {"position": pos},
                    "width": 1,
                    "text": text,
                }
            )
        state.store.set_meta("seeded", datetime.now(UTC).isoformat())
