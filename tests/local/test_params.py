"""Server-side parameter rules, function by function (the HTTP behaviour is covered in test_results)."""

from __future__ import annotations

from typing import Any

import pytest

from dagster_iwatch.local import params


def _no_query(query_id: int) -> list[str]:
    raise LookupError(query_id)


def test_query_hash_ignores_whitespace_and_block_comments() -> None:
    assert params.query_hash("select * from transfers order by id") == "1a7f307b27d78758d86374fde31b6367"
    assert params.query_hash("select *\n  from transfers /* c */ order   by id") == params.query_hash(
        "select * from transfers order by id"
    )


def test_placeholders_and_missing() -> None:
    sql = "a {{ x }} b {{period.start}} c {{ period.end }} {{ x }}"
    assert params.placeholders(sql) == ["x", "period.start", "period.end"]
    assert params.missing(sql, {"x": 1, "period": {"start": "2024-01-01"}}) == ["period.end"]
    assert params.missing(sql, {}) == ["x", "period.start", "period.end"]


def test_render() -> None:
    defs: list[dict[str, Any]] = [
        {"name": "tokens", "type": "enum", "multiValuesOptions": {"prefix": "'", "suffix": "'", "separator": ","}},
        {"name": "p", "type": "date-range"},
    ]
    sql = "in ({{ tokens }}) and d between '{{ p.start }}' and '{{ p.end }}' and n >= {{ n }}"
    out = params.render(sql, defs, {"tokens": ["ETH", "DAI"], "p": {"start": "a", "end": "b"}, "n": 5})
    assert out == "in ('ETH','DAI') and d between 'a' and 'b' and n >= 5"


@pytest.mark.parametrize(
    ("definition", "value", "ok"),
    [
        ({"type": "number"}, 3, True),
        ({"type": "number"}, 2.5, True),
        ({"type": "number"}, "1e3", True),
        ({"type": "number"}, True, True),
        ({"type": "number"}, "abc", False),
        ({"type": "number"}, None, False),
        ({"type": "text"}, "x", True),
        ({"type": "text"}, 1, False),
        ({"type": "date"}, "2024-01-01", True),
        ({"type": "date"}, "2024-13-01", False),
        ({"type": "datetime-local"}, "2024-01-01 10:00", True),
        ({"type": "datetime-with-seconds"}, "2024-01-01 10:00:05", True),
        ({"type": "datetime-with-seconds"}, 20240101, False),
        ({"type": "date-range"}, {"start": "2024-01-01", "end": "2024-01-02"}, True),
        ({"type": "datetime-range"}, {"start": "2024-01-01 00:00", "end": "2024-01-02T00:00:00Z"}, True),
        ({"type": "datetime-range-with-seconds"}, {"start": "2024-01-01 00:00:00"}, False),
        ({"type": "date-range"}, ["2024-01-01", "2024-01-02"], False),
        ({"type": "enum", "enumOptions": "A\nB"}, "A", True),
        ({"type": "enum", "enumOptions": "A\nB"}, ["A"], False),
        ({"type": "enum", "enumOptions": "A\nB", "multiValuesOptions": {}}, ["A", "B"], True),
        ({"type": "enum", "enumOptions": "A\nB", "multiValuesOptions": {}}, ["A", "C"], False),
        ({"type": "enum", "enumOptions": "A\nB", "multiValuesOptions": {}}, "B", True),
        ({"type": "query", "queryId": 1}, "A", False),
        ({"type": "enum", "enumOptions": "A\nB", "multiValuesOptions": None}, ["A"], False),
        ({"type": "enum", "enumOptions": 5}, "A", False),
        ({"type": "no-such-type"}, "A", False),
    ],
)
def test_validate(definition: dict[str, Any], value: Any, ok: bool) -> None:
    defs = [{"name": "v", **definition}]
    if ok:
        params.validate(defs, {"v": value}, _no_query)
    else:
        with pytest.raises(params.InvalidParameters, match=r"definitions: v$"):
            params.validate(defs, {"v": value}, _no_query)


def test_validate_query_parameter_uses_lookup() -> None:
    defs = [{"name": "t", "type": "query", "queryId": 12, "multiValuesOptions": {}}]
    params.validate(defs, {"t": ["ETH", "DAI"]}, lambda qid: ["DAI", "ETH"] if qid == 12 else [])
    with pytest.raises(params.InvalidParameters):
        params.validate(defs, {"t": ["DOGE"]}, lambda qid: ["DAI", "ETH"])


def test_is_safe() -> None:
    assert params.is_safe([{"name": "a", "type": "number"}])
    assert not params.is_safe([{"name": "a", "type": "text"}])
