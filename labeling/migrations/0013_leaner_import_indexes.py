# Fewer index entries per imported prompt (issue 14): the prompt table's single-column
# project index repeated the (project, id) one, and the responses' covering index repeated
# the unique (prompt, position) one. On PostgreSQL the unique constraint's index now carries
# id and text_length itself (INCLUDE), so the agreement reader still reads a prompt range's
# responses from an index alone. SQLite keeps the plain unique constraint (no INCLUDE there;
# Django would not create a covering one at all).

from django.db import migrations, models

from core.migration_ops import postgresql_only

COVERING = (
    "ALTER TABLE labeling_response DROP CONSTRAINT response_unique_position, "
    "ADD CONSTRAINT response_unique_position UNIQUE (prompt_id, position) "
    "INCLUDE (id, text_length)"
)
PLAIN = (
    "ALTER TABLE labeling_response DROP CONSTRAINT response_unique_position, "
    "ADD CONSTRAINT response_unique_position UNIQUE (prompt_id, position)"
)


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0012_project_staged_for'),
    ]

    operations = [
        migrations.AlterField(
            model_name='prompt',
            name='project',
            field=models.ForeignKey(db_index=False, on_delete=models.deletion.CASCADE, related_name='prompts', to='labeling.project'),
        ),
        migrations.RemoveIndex(
            model_name='response',
            name='response_lengths',
        ),
        postgresql_only([COVERING], [PLAIN]),
    ]
