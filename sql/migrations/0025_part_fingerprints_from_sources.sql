-- 0025 the subdivided part tables' fingerprints from weipian.source.
--
-- refresh_parts (0020) decided whether a county's township / farmland / plan
-- parts are current from count, max and sum of the layer's row ids: a scan of
-- the county's 67 000 farmland blocks at every classification (26 ms of the
-- 0.95 s of a 3 000-polygon batch). The rows of these layers are only ever
-- written by ingest, in the transaction that creates their weipian.source row,
-- and a changed file gets a new source row (a new id) while a layer dropped
-- from county.toml loses its row; so the ids of the county's source rows of
-- the kind say the same, from a table of a few rows. The first classification
-- after this migration rebuilds the parts once (the fingerprints differ in
-- form).

CREATE OR REPLACE FUNCTION weipian.refresh_parts(code text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    written integer := 0;
    n       integer;
    fp      text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('weipian.refresh_parts'), hashtext(code));

    SELECT count(*) || ':' || coalesce(string_agg(s.id::text, ',' ORDER BY s.id), '') INTO fp
    FROM weipian.source s WHERE s.county_code = code AND s.kind = 'township';
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

    SELECT count(*) || ':' || coalesce(string_agg(s.id::text, ',' ORDER BY s.id), '') INTO fp
    FROM weipian.source s WHERE s.county_code = code AND s.kind = 'farmland';
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

    SELECT count(*) || ':' || coalesce(string_agg(s.id::text, ',' ORDER BY s.id), '') INTO fp
    FROM weipian.source s WHERE s.county_code = code AND s.kind = 'plan';
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

