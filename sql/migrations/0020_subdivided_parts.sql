-- 0020 subdivided copies of the large reference polygons, for the overlays.
--
-- A township boundary or a 生态保护红线 has tens of thousands of vertices; every
-- ST_Intersects / ST_Intersection against it walks all of them, and its bounding
-- box matches every change polygon of the township. ST_Subdivide cuts each into
-- pieces of at most 128 vertices (along straight lines, so the pieces still
-- cover exactly the original), indexed, so an overlay touches only the few
-- pieces near the change polygon. Farmland blocks of more than 128 vertices are
-- subdivided the same way; the others are used from weipian.farmland as they are.
--
-- The part tables are derived data, kept per source row (township_id etc.)
-- without a foreign key, so the ingest stage may replace its tables freely;
-- weipian.refresh_parts(county), called by the classify stage, rebuilds a
-- county's parts of a layer when that layer's rows changed (weipian.part_state).
-- etldoc: township -> township_part
-- etldoc: farmland -> farmland_part
-- etldoc: plan_zone -> plan_zone_part

CREATE TABLE weipian.township_part (
    county_code  text NOT NULL,
    township_id  bigint NOT NULL,
    xzqdm        text NOT NULL,
    geom         geometry NOT NULL
);
CREATE INDEX ON weipian.township_part USING gist (geom);
CREATE INDEX ON weipian.township_part (county_code, township_id);
COMMENT ON TABLE weipian.township_part IS '乡镇界分块（ST_Subdivide，每块不超过 128 个顶点），供叠加分析使用；由 weipian.refresh_parts 维护';
COMMENT ON COLUMN weipian.township_part.township_id IS '来源乡镇界要素 weipian.township.id';

CREATE TABLE weipian.farmland_part (
    county_code  text NOT NULL,
    farmland_id  bigint NOT NULL,
    geom         geometry NOT NULL
);
CREATE INDEX ON weipian.farmland_part USING gist (geom);
CREATE INDEX ON weipian.farmland_part (county_code, farmland_id);
COMMENT ON TABLE weipian.farmland_part IS '永久基本农田分块（超过 128 个顶点的图斑经 ST_Subdivide 切分），供叠加分析使用；由 weipian.refresh_parts 维护';
COMMENT ON COLUMN weipian.farmland_part.farmland_id IS '来源要素 weipian.farmland.id';

CREATE TABLE weipian.plan_zone_part (
    county_code   text NOT NULL,
    plan_zone_id  bigint NOT NULL,
    gklx          text NOT NULL,
    geom          geometry NOT NULL
);
CREATE INDEX ON weipian.plan_zone_part USING gist (geom);
CREATE INDEX ON weipian.plan_zone_part (county_code, plan_zone_id);
COMMENT ON TABLE weipian.plan_zone_part IS '规划管控范围分块（ST_Subdivide），供叠加分析使用；由 weipian.refresh_parts 维护';
COMMENT ON COLUMN weipian.plan_zone_part.plan_zone_id IS '来源要素 weipian.plan_zone.id';

CREATE TABLE weipian.part_state (
    county_code  text NOT NULL,
    layer        text NOT NULL,
    fingerprint  text NOT NULL,
    PRIMARY KEY (county_code, layer)
);
COMMENT ON TABLE weipian.part_state IS '分块表对应的源图层状态（要素数、最大与合计 id）；不一致时重建该县该图层的分块';

-- Bring the part tables of one county up to date with its layers; returns the
-- number of parts written. A layer's parts are rebuilt when its rows changed
-- (their count, largest and summed id: ingest replaces a layer by new rows),
-- which costs one index scan per layer when nothing changed. Farmland polygons
-- of at most 128 vertices are used as they are (weipian.farmland) and get no
-- parts. Serialised per county by a transaction-level advisory lock, so two
-- batches of one county classified at once do not both write the same parts.
CREATE OR REPLACE FUNCTION weipian.refresh_parts(code text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    written integer := 0;
    n       integer;
    fp      text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('weipian.refresh_parts'), hashtext(code));

    SELECT count(*) || ':' || coalesce(max(id), 0) || ':' || coalesce(sum(id), 0) INTO fp
    FROM weipian.township WHERE county_code = code;
    IF fp IS DISTINCT FROM (SELECT s.fingerprint FROM weipian.part_state s
                            WHERE s.county_code = code AND s.layer = 'township') THEN
        DELETE FROM weipian.township_part WHERE county_code = code;
        INSERT INTO weipian.township_part (county_code, township_id, xzqdm, geom)
        SELECT t.county_code, t.id, t.xzqdm, ST_Subdivide(t.geom, 128)
        FROM weipian.township t WHERE t.county_code = code;
        GET DIAGNOSTICS n = ROW_COUNT;
        written := written + n;
        INSERT INTO weipian.part_state VALUES (code, 'township', fp)
        ON CONFLICT (county_code, layer) DO UPDATE SET fingerprint = EXCLUDED.fingerprint;
        ANALYZE weipian.township_part;
    END IF;

    SELECT count(*) || ':' || coalesce(max(id), 0) || ':' || coalesce(sum(id), 0) INTO fp
    FROM weipian.farmland WHERE county_code = code;
    IF fp IS DISTINCT FROM (SELECT s.fingerprint FROM weipian.part_state s
                            WHERE s.county_code = code AND s.layer = 'farmland') THEN
        DELETE FROM weipian.farmland_part WHERE county_code = code;
        INSERT INTO weipian.farmland_part (county_code, farmland_id, geom)
        SELECT f.county_code, f.id, ST_Subdivide(f.geom, 128)
        FROM weipian.farmland f WHERE f.county_code = code AND ST_NPoints(f.geom) > 128;
        GET DIAGNOSTICS n = ROW_COUNT;
        written := written + n;
        INSERT INTO weipian.part_state VALUES (code, 'farmland', fp)
        ON CONFLICT (county_code, layer) DO UPDATE SET fingerprint = EXCLUDED.fingerprint;
        ANALYZE weipian.farmland_part;
    END IF;

    SELECT count(*) || ':' || coalesce(max(id), 0) || ':' || coalesce(sum(id), 0) INTO fp
    FROM weipian.plan_zone WHERE county_code = code;
    IF fp IS DISTINCT FROM (SELECT s.fingerprint FROM weipian.part_state s
                            WHERE s.county_code = code AND s.layer = 'plan_zone') THEN
        DELETE FROM weipian.plan_zone_part WHERE county_code = code;
        INSERT INTO weipian.plan_zone_part (county_code, plan_zone_id, gklx, geom)
        SELECT z.county_code, z.id, z.gklx, ST_Subdivide(z.geom, 128)
        FROM weipian.plan_zone z WHERE z.county_code = code;
        GET DIAGNOSTICS n = ROW_COUNT;
        written := written + n;
        INSERT INTO weipian.part_state VALUES (code, 'plan_zone', fp)
        ON CONFLICT (county_code, layer) DO UPDATE SET fingerprint = EXCLUDED.fingerprint;
        ANALYZE weipian.plan_zone_part;
    END IF;
    RETURN written;
END
$$;
COMMENT ON FUNCTION weipian.refresh_parts(text) IS '更新一个县的分块表（township_part、farmland_part、plan_zone_part），返回写入的分块数';
