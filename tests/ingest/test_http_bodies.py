"""Real result bodies from the local server over HTTP: the native and streaming paths equal the client's."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest
import requests

from dagster_iwatch.client import IWatchClient
from dagster_iwatch.ingest import read_result_body, write_result_parquet
from dagster_iwatch.local import LocalServer
from tests.ingest.helpers import assert_same_table


@pytest.mark.parametrize("query_id", [1, 13, 14])
def test_server_bodies_convert_like_the_client(server: LocalServer, query_id: int) -> None:
    with IWatchClient(server.url, server.user_api_key, poll_interval=0.02) as client:
        result = client.execute(query_id)
    expected = result.to_arrow()
    url = f"{server.url}/api/query_results/{result.id}.json"
    headers = {"Authorization": f"Key {server.user_api_key}"}
    body = requests.get(url, headers=headers, timeout=30).content
    envelope, table = read_result_body(body)
    assert envelope["query_result"]["id"] == result.id
    assert_same_table(expected, table)
    with requests.get(url, headers=headers, timeout=30, stream=True) as response:
        sink = io.BytesIO()
        write_result_parquet(response.iter_content(1 << 12), sink, piece_bytes=1 << 14)
    assert_same_table(expected, pq.read_table(io.BytesIO(sink.getvalue())))
