# Shown orders also as binary records, for the agreement reader (issue 14). On PostgreSQL an
# assignment keeps its shown order's response ids in a stored generated column, one int8 in
# network byte order each, so a run reads ten million of them as bytes (``int8send``) instead
# of turning each jsonb into text and parsing that text: the read costs the server about a
# third as much and the client a tenth. The column is PostgreSQL's alone (no model field: the
# ORM never reads or writes it) and follows every write of ``shown_order``. Adding it rewrites
# the table: on a large project, expect a lock while it runs (docs/deploy.md).

from django.db import migrations

from core.migration_ops import postgresql_only

# An id that is not a non-negative integer (none is written so) reads as -1, "no response";
# a shown order that is not an array reads as no ids, so no write can fail on this column.
FORWARD = [
    # PL/pgSQL, a loop of simple expressions: a SQL function's body would be planned again
    # for every INSERT (0.17 ms a row against 0.04 ms, measured with pgbench).
    r"""
    CREATE FUNCTION ranklab_ids_record(ids jsonb) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
    DECLARE
      record bytea := ''::bytea;
      item text;
    BEGIN
      IF jsonb_typeof(ids) <> 'array' THEN
        RETURN record;
      END IF;
      FOR n IN 0 .. jsonb_array_length(ids) - 1 LOOP
        item := ids ->> n;
        record := record
          || int8send(CASE WHEN item ~ '^[0-9]{1,18}$' THEN item::bigint ELSE -1 END);
      END LOOP;
      RETURN record;
    END
    $$
    """,
    "ALTER TABLE labeling_assignment ADD COLUMN shown_record bytea "
    "GENERATED ALWAYS AS (ranklab_ids_record(shown_order)) STORED",
]
BACKWARD = [
    "ALTER TABLE labeling_assignment DROP COLUMN shown_record",
    "DROP FUNCTION ranklab_ids_record(jsonb)",
]


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0013_leaner_import_indexes'),
    ]

    operations = [
        postgresql_only(FORWARD, BACKWARD),
    ]
