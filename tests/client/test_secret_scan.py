"""A recognisable key through failing and succeeding calls and Dagster runs, then a search for it everywhere."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from urllib.parse import quote, quote_plus

import dagster as dg
import pytest

from dagster_iwatch import IWatchParquetIOManager, IWatchResource, build_iwatch_query_asset
from dagster_iwatch.client import IWatchClient
from dagster_iwatch.errors import IWatchError
from dagster_iwatch.local import LocalServer


def forms(secret: str) -> tuple[str, ...]:
    return (secret, quote(secret, safe=""), quote_plus(secret))


def test_a_key_never_appears_in_errors_reprs_logs_or_dagster_storage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"SCAN/{uuid.uuid4().hex}+key="
    echo = {"message": f"bad credentials {quote(secret, safe='')} / Key {secret}"}
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    home = tmp_path / "dagster_home"
    home.mkdir()
    with LocalServer(tmp_path / "server", user_api_key=secret) as srv:
        # Plain client calls, with the key as a file gives it (trailing newline): failing and succeeding.
        with IWatchClient(srv.url, secret + "\n", poll_interval=0.02, backoff_factor=0.01) as client:
            texts.append(repr(client))
            texts.append(repr(client.execute(12)))
            srv.inject_fault(status=500, method="GET", path_prefix="/api/queries/1", times=10, body=echo)
            for call in (lambda: client.get_query(1), lambda: client.get_query(99999), lambda: client.get_job("x")):
                with pytest.raises(IWatchError) as caught:
                    call()
                texts += [str(caught.value), repr(caught.value), str(vars(caught.value))]
            srv.clear_faults()

        # Dagster runs with the key from the environment, one succeeding and one failing with an echo.
        monkeypatch.setenv("IWATCH_SCAN_KEY", secret + "\n")
        resources = {
            "iwatch": IWatchResource(base_url=srv.url, api_key=dg.EnvVar("IWATCH_SCAN_KEY")),
            "io_manager": IWatchParquetIOManager(base_path=str(tmp_path / "parquet")),
        }
        good = build_iwatch_query_asset(12, key="scan_good")
        bad = build_iwatch_query_asset(2, key="scan_bad", parameters={"min_amount": 1})
        with dg.DagsterInstance.local_temp(str(home)) as instance:
            assert dg.materialize([good], resources=resources, instance=instance).success
            srv.inject_fault(status=400, method="POST", path_prefix="/api/queries/2/results", times=1, body=echo)
            failed = dg.materialize([bad], resources=resources, instance=instance, raise_on_error=False)
            assert not failed.success
            for run in instance.get_runs():
                texts += [str(entry) for entry in instance.all_logs(run.run_id)]

    texts.append(caplog.text)
    stored = [p.read_bytes().decode("utf-8", "replace") for p in home.rglob("*") if p.is_file()]
    assert stored, "the Dagster instance stored nothing to search"
    assert any("scan_good" in text for text in stored)
    for form in forms(secret):
        for text in texts + stored:
            assert form not in text
    assert any("***" in text for text in texts)
