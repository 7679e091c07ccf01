-- Optional layout: every per-county table of weipian as a declarative LIST
-- partition by county_code (one partition per county, and a DEFAULT partition
-- for counties added later). Not applied by the migrations; run it once on a
-- migrated database (empty or loaded), then call:
--
--     SELECT weipian.partition_by_county(ARRAY['140824', '140825']);
--     SELECT weipian.add_county_partitions('140826');      -- a county added later
--
-- The pipeline's SQL is unchanged: every query already filters and joins on
-- county_code, so PostgreSQL prunes to the county's partitions, and each
-- county's tables, indexes and VACUUM are its own (a province's counties can be
-- loaded, re-run or dropped one by one: DETACH PARTITION / DROP TABLE). The same
-- key distributes the tables on Citus (docs/citus.md).
--
-- What changes in the tables (PostgreSQL 15):
-- * a primary key must hold the partition key: PRIMARY KEY (id) becomes
--   PRIMARY KEY (county_code, id); unique constraints already hold county_code;
-- * identity columns are not allowed on partitioned tables before PostgreSQL 17:
--   id takes its values from a sequence (DEFAULT nextval), starting after the
--   largest id already there;
-- * weipian.county, weipian.source (referenced by source_id foreign keys with
--   ON DELETE CASCADE), the reference tables and the run records stay plain.
-- Rows already present are copied into the partitions; the per-county QGIS views
-- are re-created.

CREATE OR REPLACE FUNCTION weipian.partitioned_tables() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['township', 'landuse', 'farmland', 'approval', 'change_polygon', 'plan_zone',
                 'field_check', 'quarantine', 'change_piece', 'change_result', 'township_stat',
                 'township_part', 'farmland_part', 'plan_zone_part']
$$;
COMMENT ON FUNCTION weipian.partitioned_tables() IS '按县分区的表（LIST 分区，分区键 county_code）';

-- One partition per table for the county, named <table>_p<code> (<table>_<code> is
-- taken by the per-county QGIS views, e.g. change_piece_140824).
CREATE OR REPLACE FUNCTION weipian.add_county_partitions(code text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    IF code !~ '^[0-9A-Za-z_]+$' THEN
        RAISE EXCEPTION 'county code % cannot name a partition', code;
    END IF;
    FOREACH t IN ARRAY weipian.partitioned_tables() LOOP
        IF to_regclass(format('weipian.%I', t || '_p' || code)) IS NULL THEN
            EXECUTE format('CREATE TABLE weipian.%I PARTITION OF weipian.%I FOR VALUES IN (%L)',
                           t || '_p' || code, t, code);
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION weipian.add_county_partitions(text) IS '为一个县创建各分区表的分区（表名_p县代码）';

CREATE OR REPLACE FUNCTION weipian.partition_by_county(codes text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t        text;
    old      text;
    defs     text[];
    idx      text[];
    d        text;
    max_id   bigint;
    has_id   boolean;
    views    text[];
    c        text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_partitioned_table p WHERE p.partrelid = 'weipian.landuse'::regclass) THEN
        RAISE NOTICE 'weipian tables are partitioned already; adding partitions only';
        FOREACH c IN ARRAY codes LOOP
            PERFORM weipian.add_county_partitions(c);
        END LOOP;
        RETURN;
    END IF;
    FOREACH t IN ARRAY weipian.partitioned_tables() LOOP
        old := t || '_plain';
        -- constraints (except NOT NULL and CHECK, which LIKE copies) and plain indexes, before the rename
        SELECT coalesce(array_agg(
                   CASE WHEN con.contype = 'p' AND pg_get_constraintdef(con.oid) NOT LIKE '%county_code%'
                        THEN format('ALTER TABLE weipian.%I ADD CONSTRAINT %I PRIMARY KEY (county_code, id)',
                                    t, con.conname)
                        ELSE format('ALTER TABLE weipian.%I ADD CONSTRAINT %I %s', t, con.conname,
                                    pg_get_constraintdef(con.oid)) END
                   ORDER BY con.contype DESC, con.conname), '{}')
          INTO defs
          FROM pg_constraint con
         WHERE con.conrelid = format('weipian.%I', t)::regclass AND con.contype IN ('p', 'u', 'f');
        SELECT coalesce(array_agg(pg_get_indexdef(i.indexrelid) ORDER BY i.indexrelid), '{}')
          INTO idx
          FROM pg_index i
         WHERE i.indrelid = format('weipian.%I', t)::regclass
           AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid);
        has_id := EXISTS (SELECT 1 FROM pg_attribute a
                          WHERE a.attrelid = format('weipian.%I', t)::regclass AND a.attname = 'id');
        EXECUTE format('ALTER TABLE weipian.%I RENAME TO %I', t, old);
        EXECUTE format('CREATE TABLE weipian.%I (LIKE weipian.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                       'INCLUDING COMMENTS INCLUDING STORAGE) PARTITION BY LIST (county_code)', t, old);
        EXECUTE format('COMMENT ON TABLE weipian.%I IS %L', t,
                       obj_description(format('weipian.%I', old)::regclass, 'pg_class') || '（按县分区）');
        EXECUTE format('CREATE TABLE weipian.%I PARTITION OF weipian.%I DEFAULT', t || '_default', t);
        FOREACH c IN ARRAY codes LOOP
            IF to_regclass(format('weipian.%I', t || '_p' || c)) IS NULL THEN
                EXECUTE format('CREATE TABLE weipian.%I PARTITION OF weipian.%I FOR VALUES IN (%L)', t || '_p' || c, t, c);
            END IF;
        END LOOP;
        EXECUTE format('INSERT INTO weipian.%I SELECT * FROM weipian.%I', t, old);
        IF has_id THEN
            EXECUTE format('SELECT coalesce(max(id), 0) FROM weipian.%I', old) INTO max_id;
        END IF;
        EXECUTE format('DROP TABLE weipian.%I CASCADE', old);  -- and the per-county views on it
        IF has_id THEN
            EXECUTE format('CREATE SEQUENCE weipian.%I START %s OWNED BY weipian.%I.id', t || '_id_seq', max_id + 1, t);
            EXECUTE format('ALTER TABLE weipian.%I ALTER COLUMN id SET DEFAULT nextval(%L)', t,
                           'weipian.' || t || '_id_seq');
        END IF;
        FOREACH d IN ARRAY defs LOOP
            EXECUTE d;
        END LOOP;
        FOREACH d IN ARRAY idx LOOP
            EXECUTE d;
        END LOOP;
    END LOOP;
    FOR c IN SELECT code FROM weipian.county LOOP
        PERFORM weipian.refresh_county_views(c);
    END LOOP;
END
$$;
COMMENT ON FUNCTION weipian.partition_by_county(text[]) IS '把各县表改为按 county_code 的 LIST 分区表（每县一个分区，另有 DEFAULT 分区）';
