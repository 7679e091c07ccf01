-- 0010 ingest: features clipped away outside the county, faster replacement of a
-- load, and a per-feature WKB check for damaged files.
--
-- Every ingest now accounts for read = loaded + repaired + quarantined + clipped:
-- reference-layer features lying wholly outside the county (the union of the
-- township layer, grown by a tolerance) are dropped and counted, not quarantined.

ALTER TABLE weipian.source ADD COLUMN IF NOT EXISTS n_clipped integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN weipian.source.n_clipped IS
    '县域外裁除的要素数（参考图层中整个位于县域容差范围以外的要素；读取 = 原样入库 + 修复后入库 + 隔离 + 裁除）';
COMMENT ON COLUMN weipian.source.n_loaded IS
    '原样入库的要素数（读取 = 原样入库 + 修复后入库 + 隔离 + 裁除）';

-- A changed file replaces its previous load: DELETE FROM source cascades to the
-- layer's rows, which these indexes find without scanning every county's rows.
CREATE INDEX IF NOT EXISTS township_source_id_idx ON weipian.township (source_id);
CREATE INDEX IF NOT EXISTS landuse_source_id_idx ON weipian.landuse (source_id);
CREATE INDEX IF NOT EXISTS farmland_source_id_idx ON weipian.farmland (source_id);
CREATE INDEX IF NOT EXISTS approval_source_id_idx ON weipian.approval (source_id);
CREATE INDEX IF NOT EXISTS change_polygon_source_id_idx ON weipian.change_polygon (source_id);
CREATE INDEX IF NOT EXISTS plan_zone_source_id_idx ON weipian.plan_zone (source_id);
CREATE INDEX IF NOT EXISTS field_check_source_id_idx ON weipian.field_check (source_id);
CREATE INDEX IF NOT EXISTS quarantine_source_id_idx ON weipian.quarantine (source_id);

-- What stops a WKB value on its way in (parse, transform), or NULL when nothing
-- does. Only used when a fast bulk pass failed, to find the features at fault:
-- the exception block costs a subtransaction per call (and forbids parallelism).
CREATE OR REPLACE FUNCTION weipian.wkb_problem(wkb bytea, src_srid integer, work_srid integer)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    g geometry;
BEGIN
    IF wkb IS NULL THEN
        RETURN NULL;
    END IF;
    g := ST_GeomFromWKB(wkb, src_srid);
    IF src_srid <> work_srid THEN
        g := ST_Transform(g, work_srid);
    END IF;
    IF NOT ST_IsEmpty(g) THEN
        PERFORM ST_MakeValid(ST_Force2D(g));
    END IF;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLERRM;
END
$$;
COMMENT ON FUNCTION weipian.wkb_problem(bytea, integer, integer) IS
    '入库时几何无法解析、转换或修复的原因（无问题为 NULL）；仅在批量处理失败后逐要素查找问题时使用';

-- A feature's geometry in the working CRS (domain.md Decision 11, first half):
-- parsed in its source CRS, transformed, Z/M dropped; NULL for no geometry.
CREATE OR REPLACE FUNCTION weipian.working_geometry(wkb bytea, src_srid integer, work_srid integer)
RETURNS geometry LANGUAGE plpgsql STABLE PARALLEL SAFE COST 1000 AS $$
DECLARE
    g geometry;
BEGIN
    IF wkb IS NULL THEN
        RETURN NULL;
    END IF;
    g := ST_GeomFromWKB(wkb, src_srid);
    IF src_srid <> work_srid AND NOT ST_IsEmpty(g) THEN
        g := ST_Transform(g, work_srid);
    END IF;
    IF ST_NDims(g) > 2 THEN
        g := ST_Force2D(g);
    END IF;
    RETURN g;
END
$$;
COMMENT ON FUNCTION weipian.working_geometry(bytea, integer, integer) IS
    '入库几何：按源坐标系解析 WKB，转换到工作坐标系，去除 Z/M';

-- What the ingest does with a feature's geometry (Decision 11, second half): a
-- valid polygon or multipolygon is used as it is (clean; the caller takes
-- working_geometry again, so the geometry need not travel); anything else is
-- made valid (GEOS "linework", as ST_MakeValid) and its polygonal part kept
-- (repaired); reason says why nothing usable is left; outside says the usable
-- geometry does not touch county_area (the county grown by the tolerance; NULL:
-- no check).
CREATE OR REPLACE FUNCTION weipian.ingest_geometry(
    wkb bytea, src_srid integer, work_srid integer, county_area geometry,
    OUT clean boolean, OUT repaired geometry, OUT reason text, OUT outside boolean)
LANGUAGE plpgsql STABLE PARALLEL SAFE COST 5000 AS $$
DECLARE
    g geometry := weipian.working_geometry(wkb, src_srid, work_srid);
    usable geometry;
BEGIN
    clean := false;
    outside := false;
    IF g IS NULL OR ST_IsEmpty(g) THEN
        reason := '几何为空';
        RETURN;
    END IF;
    clean := GeometryType(g) IN ('POLYGON', 'MULTIPOLYGON') AND (ST_IsValidDetail(g)).valid;
    IF clean THEN
        usable := g;
    ELSE
        repaired := weipian.polygonal(ST_MakeValid(g));
        usable := repaired;
        IF repaired IS NULL THEN
            reason := '几何修复后无面状部分（' || GeometryType(g) || '）';
            RETURN;
        END IF;
    END IF;
    outside := county_area IS NOT NULL AND NOT ST_Intersects(county_area, usable);
END
$$;
COMMENT ON FUNCTION weipian.ingest_geometry(bytea, integer, integer, geometry) IS
    '入库几何检查：有效面则原样使用，否则 ST_MakeValid 修复并保留面状部分；并判断是否位于县域（含容差）以外';
