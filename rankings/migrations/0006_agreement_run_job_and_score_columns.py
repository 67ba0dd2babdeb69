# Agreement runs become jobs of the one lifecycle (core.jobs.Job): a heartbeat and a count
# of claims. Rater scores keep every statistic of the registry in a column of its own; the
# numbers the `details` JSON held move into their columns before it goes.

from django.db import migrations, models
from django.db.models import F

# details key -> column (same names), and whether the column is a count (0 when missing).
DETAIL_COLUMNS = {
    "agreement_no_ties": False,
    "agreement_no_ties_low": False,
    "agreement_no_ties_high": False,
    "compared_pairs_no_ties": True,
    "gold_rankings": True,
    "repeat_rankings": True,
    "straight_lined": True,
    "straight_lining_chance": False,
    "timed_rankings": True,
    "labelled_pairs": True,
    "length_pairs": True,
    "reliability_weight": False,
}


def running_runs_beat_from_their_start(apps, schema_editor):
    """A run running when this migrates has not beaten yet: its start is its last sign of life,
    so the sweep can end it if its worker is gone."""
    AgreementRun = apps.get_model("rankings", "AgreementRun")
    runs = AgreementRun.objects.using(schema_editor.connection.alias)
    runs.filter(status="running", heartbeat_at__isnull=True).update(
        heartbeat_at=F("started_at")
    )


def details_to_columns(apps, schema_editor):
    RaterScore = apps.get_model("rankings", "RaterScore")
    scores = RaterScore.objects.using(schema_editor.connection.alias)
    batch = []
    for score in scores.exclude(details={}).iterator(chunk_size=2000):
        details = score.details or {}
        for name, is_count in DETAIL_COLUMNS.items():
            value = details.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                value = 0 if is_count else None
            setattr(score, name, int(value) if is_count else float(value) if value is not None else None)
        batch.append(score)
        if len(batch) >= 2000:
            scores.bulk_update(batch, list(DETAIL_COLUMNS))
            batch = []
    if batch:
        scores.bulk_update(batch, list(DETAIL_COLUMNS))


def columns_to_details(apps, schema_editor):
    RaterScore = apps.get_model("rankings", "RaterScore")
    scores = RaterScore.objects.using(schema_editor.connection.alias)
    batch = []
    for score in scores.iterator(chunk_size=2000):
        score.details = {name: getattr(score, name) for name in DETAIL_COLUMNS}
        batch.append(score)
        if len(batch) >= 2000:
            scores.bulk_update(batch, ["details"])
            batch = []
    if batch:
        scores.bulk_update(batch, ["details"])


class Migration(migrations.Migration):

    dependencies = [
        ('rankings', '0005_prompt_agreement_without_fk_checks'),
    ]

    operations = [
        migrations.AddField(
            model_name='agreementrun',
            name='attempts',
            field=models.PositiveSmallIntegerField(default=0, help_text='How many times a worker claimed the job.'),
        ),
        migrations.AddField(
            model_name='agreementrun',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, help_text='Last sign of life from the worker running the job.', null=True),
        ),
        migrations.RunPython(running_runs_beat_from_their_start, migrations.RunPython.noop),
        migrations.AddField(
            model_name='raterscore',
            name='agreement_no_ties',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='raterscore',
            name='agreement_no_ties_high',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='raterscore',
            name='agreement_no_ties_low',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='raterscore',
            name='compared_pairs_no_ties',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='raterscore',
            name='gold_rankings',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='raterscore',
            name='labelled_pairs',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='raterscore',
            name='length_pairs',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='raterscore',
            name='reliability_weight',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='raterscore',
            name='repeat_rankings',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='raterscore',
            name='straight_lined',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='raterscore',
            name='straight_lining_chance',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='raterscore',
            name='timed_rankings',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(details_to_columns, columns_to_details),
        migrations.RemoveField(
            model_name='raterscore',
            name='details',
        ),
    ]
