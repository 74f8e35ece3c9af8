"""Schema migration of the SQLite store for campaigns, version 2 to 3.

Version 3 adds ``callbacks.campaign_id`` and its index. The version-2
file here is written by the current scheduler and turned back into the
version-2 layout with plain SQL, so it contains real promises and events.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from scheduler_support import T0, make_scheduler, request

from callsure.engine.callbacks import CallbackState
from callsure.engine.campaigns import CampaignKind, CampaignRequest, CampaignTarget
from callsure.engine.clock import VirtualClock
from callsure.engine.promotion import CampaignScheduler
from callsure.engine.store.sqlite import SCHEMA_VERSION


@pytest.fixture
def clock():
    return VirtualClock(T0)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "promises.db"


def downgrade_to_version_2(db) -> None:
    """Rewrite a current store without campaigns, in the layout of version 2."""
    raw = sqlite3.connect(db, isolation_level=None)
    raw.execute("BEGIN")
    raw.execute("DROP INDEX callbacks_campaign")
    raw.execute("ALTER TABLE callbacks DROP COLUMN campaign_id")
    raw.execute("DROP TABLE campaigns")
    raw.execute("DROP TABLE reached_agents")
    raw.execute("PRAGMA user_version=2")
    raw.execute("COMMIT")
    raw.close()


def columns(db, table: str) -> list[str]:
    raw = sqlite3.connect(db)
    names = [row[1] for row in raw.execute(f"PRAGMA table_info({table})")]
    raw.close()
    return names


def indexes(db) -> set[str]:
    raw = sqlite3.connect(db)
    names = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
    raw.close()
    return names


def user_version(db) -> int:
    raw = sqlite3.connect(db)
    (version,) = raw.execute("PRAGMA user_version").fetchone()
    raw.close()
    return version


@pytest.fixture
def version_2_store(db, clock):
    """A version-2 file with one pending callback."""
    scheduler = make_scheduler(db, clock)
    callback = scheduler.create(request("c-old"))
    scheduler.store.close()
    downgrade_to_version_2(db)
    assert "campaign_id" not in columns(db, "callbacks")
    return callback


def test_version_2_migrated_on_open(db, clock, version_2_store):
    scheduler = make_scheduler(db, clock)
    assert user_version(db) == SCHEMA_VERSION
    assert "campaign_id" in columns(db, "callbacks")
    assert {"callbacks_campaign", "campaigns", "reached_agents"} <= indexes(db)
    assert scheduler.get(version_2_store.callback_id) == version_2_store


def test_migrated_store_releases_old_callback(db, clock, version_2_store):
    scheduler = make_scheduler(db, clock)
    [order] = scheduler.due()
    assert order.callback_id == version_2_store.callback_id
    assert order.campaign_id is None


def test_migrated_store_runs_campaign(db, clock, version_2_store):
    scheduler = make_scheduler(db, clock)
    campaigns = CampaignScheduler(scheduler)
    campaign, _ = campaigns.create(
        CampaignRequest(
            request_id="r-1",
            name="ticket updates",
            kind=CampaignKind.VOC_TICKET_UPDATE,
            queue="sales",
            start_time=T0,
            end_time=T0 + timedelta(hours=4),
            max_in_flight=1,
        )
    )
    campaigns.add_targets(
        campaign.campaign_id, [CampaignTarget("c-new", "+14155550199")]
    )
    campaigns.start(campaign.campaign_id)
    released = scheduler.due()
    [order] = campaigns.due(released=released)
    assert order.customer_id == "c-new"
    assert scheduler.get(order.callback_id).state is CallbackState.DIALING


def test_second_open_keeps_version(db, clock, version_2_store):
    make_scheduler(db, clock).store.close()
    make_scheduler(db, clock).store.close()
    assert user_version(db) == SCHEMA_VERSION
