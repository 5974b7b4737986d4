"""The test session itself: which database each pass runs on."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_tests_run_on_postgresql():
    assert connection.vendor == "postgresql"


def test_plain_pytest_skips_postgres_tests_with_the_reason(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k != "CIBLE_TEST_DATABASE"}
    environment["CIBLE_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/ops/test_session.py::test_postgres_tests_run_on_postgresql",
            "-rs",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 skipped" in result.stdout
    assert "needs PostgreSQL: runs in the PostgreSQL pass" in result.stdout
