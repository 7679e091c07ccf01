-- 0023 "outside the county" by distance, not by a buffered county.
--
-- 0010 tested a feature against the union of the townships grown by
-- [settings] outside_tolerance_m. Growing a county boundary of ~13 000
-- vertices by 1 000 m takes GEOS seconds, once per ingest. Here the county is
-- the union itself: a feature touching it is inside (a prepared test, cheap);
-- only the few that do not are measured, and they are outside when farther
-- than the tolerance (exactly, where the buffer's arcs were 16-segment
-- approximations). pipeline/staging.py makes the same test with GEOS for the
-- features it checks itself.

CREATE OR REPLACE FUNCTION weipian.ingest_geometry(
    wkb bytea, src_srid integer, work_srid integer, county geometry, tolerance_m double precision,
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
    outside := county IS NOT NULL
               AND NOT ST_Intersects(county, usable)
               AND NOT ST_DWithin(county, usable, tolerance_m);
END
$$;
COMMENT ON FUNCTION weipian.ingest_geometry(bytea, integer, integer, geometry, double precision) IS
    '入库几何检查：有效面则原样使用，否则 ST_MakeValid 修复并保留面状部分；并判断是否距县域（乡镇界并集）超过容差';
