# Tie groups also as binary records, for the agreement reader (issue 14). On PostgreSQL a
# ranking keeps its groups in a stored generated column: per response, best first, its id
# (int8) and its group's level (int2, 1 = best), in network byte order, so a run reads ten
# million rankings as bytes instead of turning each jsonb into text and parsing that text.
# The column is PostgreSQL's alone (no model field: the ORM never reads or writes it) and
# follows every write of ``groups``, an undo's included. Adding it rewrites the table: on a
# large project, expect a lock while it runs (docs/deploy.md).

from django.db import migrations

# Levels count every group, an empty one too, as the portable reader does; an id that is not
# a non-negative integer (none is written so) reads as -1; groups that are not arrays of
# arrays read as no ids, so no write can fail on this column.
FORWARD = [
    r"""
    CREATE FUNCTION ranklab_tie_groups_record(groups jsonb) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
      SELECT coalesce(
        string_agg(
          int8send(CASE WHEN (e.id #>> '{}') ~ '^[0-9]{1,18}$'
                        THEN (e.id #>> '{}')::bigint ELSE -1 END)
            || int2send(g.level::int2),
          ''::bytea ORDER BY g.level, e.n),
        ''::bytea)
      FROM jsonb_array_elements(CASE WHEN jsonb_typeof(groups) = 'array' THEN groups
                                     ELSE '[]'::jsonb END) WITH ORDINALITY AS g(members, level),
           jsonb_array_elements(CASE WHEN jsonb_typeof(g.members) = 'array' THEN g.members
                                     ELSE '[]'::jsonb END) WITH ORDINALITY AS e(id, n)
    $$
    """,
    "ALTER TABLE rankings_ranking ADD COLUMN groups_record bytea "
    "GENERATED ALWAYS AS (ranklab_tie_groups_record(groups)) STORED",
]
BACKWARD = [
    "ALTER TABLE rankings_ranking DROP COLUMN groups_record",
    "DROP FUNCTION ranklab_tie_groups_record(jsonb)",
]


def add_groups_record(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in FORWARD:
            schema_editor.execute(statement)


def drop_groups_record(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0014_assignment_shown_record'),
        ('rankings', '0013_prompt_rows_without_prompt_index'),
    ]

    operations = [
        migrations.RunPython(add_groups_record, drop_groups_record),
    ]
