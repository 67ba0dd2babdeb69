# Tie groups also as binary records, for the agreement reader (issue 14). On PostgreSQL a
# ranking keeps its groups in a stored generated column: per response, best first, its id
# (int8) and its group's level (int2, 1 = best), in network byte order, so a run reads ten
# million rankings as bytes instead of turning each jsonb into text and parsing that text.
# The column is PostgreSQL's alone (no model field: the ORM never reads or writes it) and
# follows every write of ``groups``, an undo's included. Adding it rewrites the table: on a
# large project, expect a lock while it runs (docs/deploy.md).

from django.db import migrations

from core.migration_ops import postgresql_only

# Levels count every group, an empty one too, as the portable reader does; an id that is not
# a non-negative integer (none is written so) reads as -1; groups that are not arrays of
# arrays read as no ids, so no write can fail on this column.
FORWARD = [
    # PL/pgSQL, a loop of simple expressions: a SQL function's body would be planned again
    # for every INSERT (0.17 ms a row against 0.04 ms, measured with pgbench).
    r"""
    CREATE FUNCTION ranklab_tie_groups_record(groups jsonb) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
    DECLARE
      record bytea := ''::bytea;
      members jsonb;
      item text;
    BEGIN
      IF jsonb_typeof(groups) <> 'array' THEN
        RETURN record;
      END IF;
      FOR level IN 1 .. jsonb_array_length(groups) LOOP
        members := groups -> (level - 1);
        CONTINUE WHEN jsonb_typeof(members) <> 'array';
        FOR n IN 0 .. jsonb_array_length(members) - 1 LOOP
          item := members ->> n;
          record := record
            || int8send(CASE WHEN item ~ '^[0-9]{1,18}$' THEN item::bigint ELSE -1 END)
            || int2send(level::int2);
        END LOOP;
      END LOOP;
      RETURN record;
    END
    $$
    """,
    "ALTER TABLE rankings_ranking ADD COLUMN groups_record bytea "
    "GENERATED ALWAYS AS (ranklab_tie_groups_record(groups)) STORED",
]
BACKWARD = [
    "ALTER TABLE rankings_ranking DROP COLUMN groups_record",
    "DROP FUNCTION ranklab_tie_groups_record(jsonb)",
]


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0014_assignment_shown_record'),
        ('rankings', '0013_prompt_rows_without_prompt_index'),
    ]

    operations = [
        postgresql_only(FORWARD, BACKWARD),
    ]
