"""The raw CDNOW sample through Cible's own doors: CSV files built from the transaction log →
``import_contacts`` (with ``signed_up_at``) / ``import_events`` → ``fit_clv --calibration-end
1997-09-30 --time-unit week`` reproduces Fader, Hardie & Lee's published parameters, and the
features as of 1998-07-01 equal an independent computation from the raw log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from contacts.models import Contact
from segments.models import ContactFeatures

RAW = Path(__file__).parent / "data" / "CDNOW_sample.txt"
AS_OF = datetime(1998, 7, 1, tzinfo=UTC)

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    raw = pd.read_csv(
        RAW, sep=r"\s+", header=None, names=["master", "customer", "date", "cds", "amount"]
    )
    raw["day"] = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d").dt.tz_localize("UTC")
    return raw


@pytest.fixture
def imported(log, tmp_path) -> pd.DataFrame:
    """The log as two CSV files, imported by the commands. Every tenth customer is left out of
    the contacts file: it is created by its events (and dated by the first of them)."""
    first = log.groupby("customer")["day"].min()
    contacts = pd.DataFrame(
        {
            "external_id": [f"cdnow-{c}" for c in first.index],
            "signed_up_at": first.dt.strftime("%Y-%m-%d").to_numpy(),
        }
    )
    contacts = contacts[first.index % 10 != 0]
    events = pd.DataFrame(
        {
            "external_id": "cdnow-" + log["customer"].astype(str),
            "type": "purchase",
            "timestamp": log["day"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "idempotency_key": [f"cdnow-line-{i + 1}" for i in range(len(log))],
            "amount": log["amount"].map("{:.2f}".format),
            "cds": log["cds"],
        }
    )
    contacts.to_csv(tmp_path / "contacts.csv", index=False)
    events.to_csv(tmp_path / "events.csv", index=False)
    out = StringIO()
    call_command("import_contacts", str(tmp_path / "contacts.csv"), stdout=out)
    call_command("import_events", str(tmp_path / "events.csv"), stdout=out)
    assert "6,919 created" in out.getvalue() and "0 rejected" in out.getvalue()
    assert Contact.objects.count() == 2357
    return log


def test_fit_clv_on_the_raw_cdnow_log_reproduces_the_published_parameters(imported):
    out = StringIO()
    call_command(
        "fit_clv", "--calibration-end", "1997-09-30", "--time-unit", "week", "--json", stdout=out
    )
    fit = json.loads(out.getvalue())
    bgnbd, gg = fit["bgnbd"], fit["gamma_gamma"]
    assert fit["customers"] == 2357
    # Fader, Hardie & Lee (2005a): r 0.243, α 4.414, a 0.793, b 2.426 (weeks);
    # Fader & Hardie (2013): p 6.25, q 3.74, γ 15.44.
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert bgnbd[name] == pytest.approx(value, rel=0.01), name
    for name, value in {"p": 6.25, "q": 3.74, "gamma": 15.44}.items():
        assert gg[name] == pytest.approx(value, rel=0.01), name


def test_features_as_of_1998_07_01_equal_an_independent_computation(imported):
    log = imported
    call_command("refresh_features", "--as-of", AS_OF.isoformat(), stdout=StringIO())
    stored = pd.DataFrame.from_records(
        ContactFeatures.objects.values(
            "contact__external_id",
            "recency_days",
            "frequency_90d",
            "frequency_365d",
            "monetary_total",
            "avg_basket",
            "mean_interpurchase_days",
            "days_since_signup",
        )
    ).set_index("contact__external_id")
    assert len(stored) == 2357  # every customer signed up by then (not 0: not the import day)
    day = pd.Timedelta(days=1)
    as_of = pd.Timestamp(AS_OF)
    grouped = log.groupby("customer")
    expected = pd.DataFrame(
        {
            "recency_days": ((as_of - grouped["day"].max()) // day).astype(int),
            "frequency_90d": grouped["day"].agg(lambda d: int((d > as_of - 90 * day).sum())),
            "frequency_365d": grouped["day"].agg(lambda d: int((d > as_of - 365 * day).sum())),
            "monetary_total": grouped["amount"].sum(),
            "avg_basket": grouped["amount"].mean(),
            "mean_interpurchase_days": grouped["day"].agg(
                lambda d: (d.max() - d.min()) / day / (len(d) - 1) if len(d) > 1 else np.nan
            ),
            "days_since_signup": ((as_of - grouped["day"].min()) // day).astype(int),
        }
    )
    expected.index = "cdnow-" + expected.index.astype(str)
    stored = stored.loc[expected.index]
    for column in ("recency_days", "frequency_90d", "frequency_365d", "days_since_signup"):
        assert stored[column].tolist() == expected[column].tolist(), column
    for column in ("monetary_total", "avg_basket", "mean_interpurchase_days"):
        np.testing.assert_allclose(
            stored[column].to_numpy(dtype=float), expected[column].to_numpy(dtype=float), rtol=1e-9
        )


def test_sign_up_cohorts_of_the_raw_log_are_its_first_purchase_months(imported):
    from segments.scoring.selectors import cohort_table

    log = imported
    table = cohort_table(by="signup", months=19, now=AS_OF)  # 1997-01 … 1998-07
    first_month = log.groupby("customer")["day"].min().dt.strftime("%Y-%m").value_counts()
    assert dict(zip(table.cohorts, table.sizes, strict=True)) == first_month.sort_index().to_dict()
    assert table.cohorts == ["1997-01", "1997-02", "1997-03"]


@pytest.mark.postgres
def test_raw_cdnow_through_the_postgresql_paths(imported):
    """The same checks on PostgreSQL (COPY import, binary-COPY RFM summary, features SQL)."""
    test_fit_clv_on_the_raw_cdnow_log_reproduces_the_published_parameters(imported)
    test_features_as_of_1998_07_01_equal_an_independent_computation(imported)
    test_sign_up_cohorts_of_the_raw_log_are_its_first_purchase_months(imported)
