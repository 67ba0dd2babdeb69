"""Exports read from the read replica when one is configured, and write only to the primary.

A second database alias, `replica`, gets a test database of its own (not a mirror), so a
test can tell which database answered: rows are copied to it by `replicate` (what
streaming replication does), then the two are made to differ.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import orjson
import pytest
from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections

from config.routers import ReplicaRouter
from core import db
from exports import selectors, services
from exports.models import ExportJob
from exports.selectors.prefetch import prefetched
from labeling.models import Prompt
from rankings.models import Ranking
from tests.exports.rated import export

BOTH = [DEFAULT_DB_ALIAS, db.REPLICA]


@pytest.fixture(scope="module")
def replica_database(django_db_setup, django_db_blocker) -> Iterator[str]:
    """The `replica` alias with its own empty, migrated test database."""
    default = connections.settings[DEFAULT_DB_ALIAS]
    entry = copy.deepcopy(default)
    if connections[DEFAULT_DB_ALIAS].vendor == "sqlite":
        entry["TEST"] = {**entry["TEST"], "NAME": None}  # its own in-memory database
        # Tables straight from the models: the primary's schema on SQLite.
        entry["TEST"]["MIGRATE"] = False
    else:
        # The primary's schema, as replication gives a replica: the migrations, which also
        # make what no model names (the generated binary lists the agreement reader reads:
        # rankings and labeling migrations 0014). In production the router never migrates
        # the replica alias; `routed` installs it only after this.
        entry["TEST"] = {**entry["TEST"], "NAME": f"{default['NAME']}_replica"}
    connections.settings[db.REPLICA] = entry
    with django_db_blocker.unblock():
        old_name = connections[db.REPLICA].creation.create_test_db(verbosity=0, autoclobber=True)
    yield db.REPLICA
    with django_db_blocker.unblock():
        connections[db.REPLICA].creation.destroy_test_db(old_name, verbosity=0)
    connections[db.REPLICA].close()
    del connections[db.REPLICA]
    del connections.settings[db.REPLICA]


@pytest.fixture
def routed(replica_database, settings) -> str:
    """The router installed, as DATABASE_REPLICA_URL installs it."""
    settings.DATABASE_ROUTERS = ["config.routers.ReplicaRouter"]
    return replica_database


def replicate() -> None:
    """Make the replica hold exactly the primary's rows, table by table."""
    replica = connections[db.REPLICA]
    models = [model for model in apps.get_models(include_auto_created=True) if model._meta.managed]
    with replica.cursor() as cursor:
        if replica.vendor == "postgresql":
            # Rows replayed as a replica replays them: no trigger fires (the search table's
            # rows come over as rows). The setting lasts the connection's session.
            cursor.execute("SET session_replication_role = replica")
        for model in models:
            cursor.execute(f"DELETE FROM {replica.ops.quote_name(model._meta.db_table)}")
    for model in models:
        rows = list(model._base_manager.using(DEFAULT_DB_ALIAS).all())
        model._base_manager.using(db.REPLICA).bulk_create(rows)


def jsonl_rows(job: ExportJob, export_folder) -> list[dict]:
    return [
        orjson.loads(line) for line in (export_folder / job.file.name).read_bytes().splitlines()
    ]


def test_router_sends_reads_to_the_replica_only_inside_replica_reads():
    router = ReplicaRouter()
    assert router.db_for_read(Prompt) == DEFAULT_DB_ALIAS
    with db.replica_reads():
        assert router.db_for_read(Prompt) == db.REPLICA
        assert router.db_for_read(Ranking) == db.REPLICA
        # Job rows coordinate workers: never read stale.
        assert router.db_for_read(ExportJob) == DEFAULT_DB_ALIAS
        assert router.db_for_write(Ranking) == DEFAULT_DB_ALIAS
    assert router.db_for_read(Prompt) == DEFAULT_DB_ALIAS
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "labeling") is True
    assert router.allow_migrate(db.REPLICA, "labeling") is False


def test_read_on_replica_sets_the_routing_only_while_each_step_runs():
    seen = []

    def steps() -> Iterator[int]:
        for step in range(3):
            seen.append(db.replica_reads_active())
            yield step

    for _ in db.read_on_replica(steps()):
        assert not db.replica_reads_active()  # nothing leaks into the consumer
    assert seen == [True, True, True]


def test_the_read_ahead_thread_keeps_the_callers_routing():
    def batches() -> Iterator[bool]:
        for _ in range(2):
            yield db.replica_reads_active()

    with db.replica_reads():
        assert list(prefetched(batches())) == [True, True]
    assert list(prefetched(batches())) == [False, False]


@pytest.mark.django_db(databases=BOTH)
def test_export_job_reads_the_replica_and_writes_only_the_primary(
    routed, rated, lead, export_folder
):
    replicate()
    everything = len(jsonl_rows(export(rated, lead), export_folder))
    # The replica has not replayed the newest rankings of one prompt yet.
    prompt = Prompt.objects.filter(project=rated).order_by("id").first()
    Ranking.objects.using(db.REPLICA).filter(prompt=prompt).delete()
    assert Ranking.objects.filter(prompt=prompt).count() == 3  # the primary keeps them

    job = export(rated, lead)

    rows = jsonl_rows(job, export_folder)
    assert 0 < len(rows) < everything
    assert {row["prompt_id"] for row in rows} == {
        prompt_id
        for prompt_id in Prompt.objects.filter(project=rated).values_list("id", flat=True)
        if prompt_id != prompt.pk
    }
    assert job.rows == len(rows)
    assert not ExportJob.objects.using(db.REPLICA).filter(pk=job.pk).exists()
    assert ExportJob.objects.using(DEFAULT_DB_ALIAS).get(pk=job.pk).status == "done"


@pytest.mark.django_db(databases=BOTH)
def test_a_pinned_export_reads_the_primary_while_the_replica_lags_behind_its_snapshot(
    routed, rated, lead, export_folder
):
    replicate()
    first = export(rated, lead)
    newest = Ranking.objects.filter(project=rated).order_by("-id").first()
    assert newest is not None
    Ranking.objects.using(db.REPLICA).filter(pk=newest.pk).delete()

    again = export(rated, lead, params={"until_ranking_id": first.last_ranking_id})

    assert again.sha256 == first.sha256  # the same parameters gave the same file


@pytest.mark.django_db(databases=BOTH)
def test_without_replica_reads_nothing_is_read_from_the_replica(routed, rated, lead):
    # The replica is empty: anything read from it would come back empty.
    assert selectors.newest_ranking_id(project=rated) > 0
    assert Prompt.objects.filter(project=rated).count() == 2
    with db.replica_reads():
        assert selectors.newest_ranking_id(project=rated) == 0


@pytest.mark.django_db(databases=BOTH)
def test_streamed_export_reads_the_replica(routed, rated, lead):
    replicate()
    full = b"".join(services.export_stream_open(project=rated))
    Ranking.objects.using(db.REPLICA).filter(project=rated).delete()

    streamed = b"".join(services.export_stream_open(project=rated))

    assert full.count(b"\n") > 0
    assert streamed == b""
