"""Parameter serialization and validation, alone and through execute() against the local server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from dagster_iwatch.client import IWatchClient
from dagster_iwatch.errors import ParameterError
from dagster_iwatch.local import LocalServer
from dagster_iwatch.parameters import serialize_parameters
from dagster_iwatch.types import MultiValuesOptions, Parameter, Query

TOKENS = ("ETH", "USDC", "WBTC", "DAI", "LINK")
MULTI = MultiValuesOptions(prefix="'", suffix="'", separator=",")


def query_with(*parameters: Parameter) -> Query:
    return Query(id=1, name="q", query="select 1", parameters=parameters)


def one(kind: str, value: Any, **extra: Any) -> Any:
    return serialize_parameters(query_with(Parameter("p", kind, **extra)), {"p": value})["p"]


@pytest.mark.parametrize(
    ("value", "sent"),
    [(5, 5), (2.5, 2.5), (Decimal("12"), 12), (Decimal("0.5"), 0.5), (" 12 ", 12), ("2000.5", 2000.5), (0, 0)],
)
def test_number(value: Any, sent: Any) -> None:
    result = one("number", value)
    assert result == sent
    assert type(result) is type(sent)


@pytest.mark.parametrize("value", [True, False, "abc", None, [1], float("nan"), float("inf"), Decimal("NaN")])
def test_number_refuses(value: Any) -> None:
    with pytest.raises(ParameterError) as caught:
        one("number", value)
    assert caught.value.name == "p"
    assert "number" in caught.value.expected


def test_text() -> None:
    assert one("text", "ETH") == "ETH"
    with pytest.raises(ParameterError, match="not a string"):
        one("text", 5)


@pytest.mark.parametrize(
    ("kind", "value", "sent"),
    [
        ("date", date(2024, 2, 29), "2024-02-29"),
        ("date", "2024-02-29", "2024-02-29"),
        ("date", datetime(2024, 2, 29), "2024-02-29"),
        ("datetime-local", datetime(2024, 3, 1, 12, 30), "2024-03-01 12:30"),
        ("datetime-local", "2024-03-01T12:30", "2024-03-01 12:30"),
        ("datetime-local", date(2024, 3, 1), "2024-03-01 00:00"),
        ("datetime-local", datetime(2024, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))), "2024-03-01 12:30"),
        ("datetime-local", "2024-03-01T12:30:00Z", "2024-03-01 12:30"),
        ("datetime-with-seconds", datetime(2024, 3, 1, 12, 30, 15), "2024-03-01 12:30:15"),
        ("datetime-with-seconds", "2024-03-01 12:30:15", "2024-03-01 12:30:15"),
    ],
)
def test_dates_and_datetimes(kind: str, value: Any, sent: str) -> None:
    assert one(kind, value) == sent


@pytest.mark.parametrize(
    ("kind", "value", "problem"),
    [
        ("date", "notadate", "cannot parse"),
        ("date", "2024-02-30", "cannot parse"),
        ("date", datetime(2024, 2, 29, 10, 0), "more precise"),
        ("date", 20240229, "not a date"),
        ("datetime-local", datetime(2024, 3, 1, 12, 30, 15), "more precise"),
        ("datetime-local", "2024-13-01 00:00", "cannot parse"),
        ("datetime-with-seconds", datetime(2024, 3, 1, 12, 30, 15, 5), "more precise"),
    ],
)
def test_dates_refuse(kind: str, value: Any, problem: str) -> None:
    with pytest.raises(ParameterError, match=problem):
        one(kind, value)


@pytest.mark.parametrize(
    ("kind", "value", "sent"),
    [
        ("date-range", (date(2024, 1, 1), date(2024, 1, 31)), {"start": "2024-01-01", "end": "2024-01-31"}),
        ("date-range", {"start": "2024-01-01", "end": "2024-01-01"}, {"start": "2024-01-01", "end": "2024-01-01"}),
        ("date-range", ["2024-01-01", date(2024, 2, 1)], {"start": "2024-01-01", "end": "2024-02-01"}),
        (
            "datetime-range",
            (datetime(2024, 1, 1), datetime(2024, 1, 1, 23, 59)),
            {"start": "2024-01-01 00:00", "end": "2024-01-01 23:59"},
        ),
        (
            "datetime-range-with-seconds",
            {"start": datetime(2024, 1, 1, tzinfo=UTC), "end": "2024-01-02 00:00:01"},
            {"start": "2024-01-01 00:00:00", "end": "2024-01-02 00:00:01"},
        ),
    ],
)
def test_ranges(kind: str, value: Any, sent: dict[str, str]) -> None:
    assert one(kind, value) == sent


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (("2024-02-01", "2024-01-01"), "start is after end"),
        ("2024-01-01", "not a range"),
        (("2024-01-01",), "not a range"),
        ({"start": "2024-01-01"}, "exactly 'start' and 'end'"),
        ((None, "2024-01-01"), "both ends"),
        (("x", "2024-01-01"), "cannot parse"),
    ],
)
def test_ranges_refuse(value: Any, problem: str) -> None:
    with pytest.raises(ParameterError, match=problem):
        one("date-range", value)


def test_enum_single_and_multi() -> None:
    assert one("enum", "DAI", enum_options=TOKENS) == "DAI"
    assert one("enum", ["ETH", "LINK"], enum_options=TOKENS, multi_values=MULTI) == ["ETH", "LINK"]
    assert one("enum", ("ETH",), enum_options=TOKENS, multi_values=MULTI) == ["ETH"]
    # One string for a multi-value enum still goes as a list, so Redash quotes it.
    assert one("enum", "USDC", enum_options=TOKENS, multi_values=MULTI) == ["USDC"]


@pytest.mark.parametrize(
    ("value", "multi", "problem"),
    [
        ("DOGE", None, "not allowed"),
        (["DAI"], None, "one value, not a list"),
        (["ETH", "DOGE"], MULTI, "not allowed"),
        ([], MULTI, "at least one"),
        (5, None, "not a string"),
    ],
)
def test_enum_refuses(value: Any, multi: MultiValuesOptions | None, problem: str) -> None:
    with pytest.raises(ParameterError, match=problem) as caught:
        one("enum", value, enum_options=TOKENS, multi_values=multi)
    assert "ETH, USDC, WBTC, DAI, LINK" in caught.value.expected


def test_query_parameter_checks_shape_only() -> None:
    assert one("query", "ETH", query_id=12) == "ETH"
    assert one("query", 7, query_id=12) == "7"
    assert one("query", ["ETH", "DAI"], query_id=12, multi_values=MULTI) == ["ETH", "DAI"]
    with pytest.raises(ParameterError, match="one value, not a list") as caught:
        one("query", ["ETH"], query_id=12)
    assert "query 12" in caught.value.expected


def test_sets_are_sorted_and_mixed_sets_are_refused_not_crashed() -> None:
    assert one("enum", {"LINK", "DAI"}, enum_options=TOKENS, multi_values=MULTI) == ["DAI", "LINK"]
    assert one("query", {"ETH", 7}, query_id=12, multi_values=MULTI) == ["7", "ETH"]
    with pytest.raises(ParameterError, match="not a string") as caught:
        one("enum", {"ETH", 5}, enum_options=TOKENS, multi_values=MULTI)
    assert caught.value.value == 5


def test_defaults_fill_missing_values() -> None:
    query = query_with(
        Parameter("n", "number", value=100),
        Parameter("period", "date-range", value={"start": "2024-01-01", "end": "2024-01-31"}),
    )
    assert serialize_parameters(query, None) == {"n": 100, "period": {"start": "2024-01-01", "end": "2024-01-31"}}
    assert serialize_parameters(query, {"n": 5})["n"] == 5


def test_unknown_missing_and_bad_default() -> None:
    query = query_with(Parameter("n", "number"), Parameter("day", "date", value="d_yesterday"))
    with pytest.raises(ParameterError, match="unknown parameter") as caught:
        serialize_parameters(query, {"n": 1, "day": "2024-01-01", "bogus": 2})
    assert caught.value.name == "bogus"
    assert "'n', 'day'" in caught.value.expected
    with pytest.raises(ParameterError, match="no value given and no default") as caught:
        serialize_parameters(query, {"day": "2024-01-01"})
    assert caught.value.name == "n"
    assert caught.value.value is None
    assert str(caught.value).startswith("Parameter 'n': no value given and no default; expected a number")
    with pytest.raises(ParameterError, match="default is not usable"):
        serialize_parameters(query, {"n": 1})


# Against the local server: each type runs, and a bad value is refused before any request is sent.


@pytest.fixture
def client(server: LocalServer) -> Iterator[IWatchClient]:
    with IWatchClient(server.url, server.user_api_key, poll_interval=0.02) as c:
        yield c


@pytest.mark.parametrize(
    ("query_id", "values", "check"),
    [
        (2, {"min_amount": Decimal("1000")}, lambda rows: rows and all(r["amount"] >= 1000 for r in rows)),
        (3, {"token": "WBTC"}, lambda rows: rows and {r["token"] for r in rows} == {"WBTC"}),
        (4, {"day": date(2024, 1, 15)}, lambda rows: len(rows) == 5),
        (
            5,
            {"period": (date(2024, 3, 1), date(2024, 3, 2))},
            lambda rows: {r["block_date"] for r in rows} == {"2024-03-01", "2024-03-02"},
        ),
        (
            6,
            {"since": datetime(2024, 3, 31, 12, 0)},
            lambda rows: rows and min(r["block_time"] for r in rows) >= "2024-03-31T12",
        ),
        (7, {"token": "LINK"}, lambda rows: rows and {r["token"] for r in rows} == {"LINK"}),
        (8, {"tokens": ["ETH", "WBTC"]}, lambda rows: [r["token"] for r in rows] == ["ETH", "WBTC"]),
        (8, {"tokens": "DAI"}, lambda rows: [r["token"] for r in rows] == ["DAI"]),
        (9, {"token": "USDC"}, lambda rows: rows and {r["token"] for r in rows} == {"USDC"}),
        (
            16,
            {"window": (datetime(2024, 1, 1, 0, 0), datetime(2024, 1, 1, 6, 0))},
            lambda rows: rows and max(r["block_time"] for r in rows) <= "2024-01-01T06:00:00Z",
        ),
        (17, {"n": 7}, lambda rows: len(rows) == 7),
    ],
)
def test_every_parameter_type_runs(client: IWatchClient, query_id: int, values: dict[str, Any], check: Any) -> None:
    result = client.execute(query_id, values)
    assert check(result.rows), result.rows[:3]
    assert set(result.parameters) == set(values)


@pytest.mark.parametrize(
    ("query_id", "values"),
    [
        (2, {"min_amount": True}),
        (2, {"min_amount": "abc"}),
        (2, {"bogus": 1}),
        (3, {"token": 5}),
        (4, {"day": "notadate"}),
        (5, {"period": ("2024-03-05", "2024-03-01")}),
        (6, {"since": "2024-03-01 12:00:30"}),
        (7, {"token": "DOGE"}),
        (8, {"tokens": ["ETH", "DOGE"]}),
        (9, {"token": ["ETH"]}),
        (16, {"window": {"start": "2024-01-01 00:00"}}),
    ],
)
def test_invalid_values_are_refused_before_sending(server: LocalServer, query_id: int, values: dict[str, Any]) -> None:
    with IWatchClient(server.url, server.user_api_key) as client:
        query = client.get_query(query_id)
        server.clear_requests_seen()
        with pytest.raises(ParameterError) as caught:
            client.execute(query_id, values, query=query)
    assert caught.value.name in values
    assert server.requests_seen == []


def test_missing_value_without_default_is_refused_before_sending(server: LocalServer) -> None:
    with IWatchClient(server.url, server.user_api_key) as client:
        query = client.get_query(2)
        bare = Query(id=2, name=query.name, query=query.query, parameters=(Parameter("min_amount", "number"),))
        server.clear_requests_seen()
        with pytest.raises(ParameterError, match="no value given"):
            client.execute(2, query=bare)
    assert server.requests_seen == []


def test_types_with_seconds_run_on_a_new_query(client: IWatchClient, server: LocalServer) -> None:
    created = client.create_query(
        name="seconds",
        query="select count(*) as n from transfers where block_time >= datetime('{{ span.start }}')"
        " and block_time <= datetime('{{ span.end }}') and block_time < datetime('{{ at }}')",
        data_source_id=1,
        parameters=[
            Parameter(
                "span",
                "datetime-range-with-seconds",
                value={"start": "2024-01-01 00:00:00", "end": "2024-01-02 00:00:00"},
            ),
            Parameter("at", "datetime-with-seconds", value="2024-01-01 12:00:00"),
        ],
    )
    half = client.execute(created.id)
    full = client.execute(created.id, {"at": datetime(2024, 1, 2, 0, 0, 1)})
    assert 0 < half.rows[0]["n"] < full.rows[0]["n"]
    assert full.parameters["at"] == "2024-01-02 00:00:01"
    server.clear_requests_seen()
    with pytest.raises(ParameterError, match="more precise"):
        client.execute(created.id, {"at": datetime(2024, 1, 2, 0, 0, 1, 500)}, query=created)
    assert server.requests_seen == []
