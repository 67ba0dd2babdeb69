# The rater's frontier in the queue is kept on the membership (read with it, no planner
# choice involved) rather than looked up through an index on assignments; the lone index on
# an assignment's rater goes (see Assignment.rater).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce


def frontiers_from_history(apps, schema_editor):
    """Each membership starts at the furthest queue prompt (not gold) its rater already had."""
    Membership = apps.get_model("labeling", "Membership")
    Assignment = apps.get_model("labeling", "Assignment")
    furthest = (
        Assignment.objects.filter(
            project=OuterRef("project_id"),
            rater=OuterRef("user_id"),
            is_repeat=False,
            prompt__is_gold=False,
        )
        .order_by("-prompt_id")
        .values("prompt_id")[:1]
    )
    Membership.objects.update(queue_frontier=Coalesce(Subquery(furthest), 0))


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0008_project_task_kind"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="assignment",
            name="rater",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="assignments",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="membership",
            name="queue_frontier",
            field=models.BigIntegerField(
                default=0,
                editable=False,
                help_text="The furthest prompt id the queue has leased to this rater; their "
                "next scan starts just behind it, so it never walks back through all they "
                "have done.",
            ),
        ),
        migrations.RunPython(frontiers_from_history, migrations.RunPython.noop, elidable=True),
    ]
