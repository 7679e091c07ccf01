-- Ingest, for layers with geometry: each staged feature with its geometry as it
-- will be stored, and whether it is used.
--
-- geom: a feature found clean while it was read (stage.clean: same CRS, valid,
-- 2D, checked with GEOS in Python) is its WKB as read; one PostGIS checked
-- (stage_check, 00_check_geometry.sql) is its working geometry when clean, else
-- the repaired one. A feature outside the county is quarantined when
-- weipian.outside_rule is 'quarantine' (change polygons) and dropped and counted
-- (clipped) when it is 'clip' (reference layers).
--
-- The view shows the features weipian.first .. weipian.last: one batch while
-- it is inserted as the next is read, or all of them.
-- etldoc: stage, stage_check -> stage_fixed
CREATE VIEW stage_fixed AS
SELECT s.*,
       CASE WHEN s.clean THEN ST_Multi(ST_GeomFromWKB(s.wkb, current_setting('weipian.work_srid')::integer))
            WHEN c.clean THEN ST_Multi(weipian.working_geometry(s.wkb, current_setting('weipian.src_srid')::integer,
                                                                current_setting('weipian.work_srid')::integer))
            ELSE c.repaired
       END AS geom,
       NOT s.clean AND (c.repaired IS NOT NULL OR (c.clean AND s.wkb_repaired)) AS repaired,
       CASE WHEN s.clean THEN NULL
            WHEN s.wkb_error IS NOT NULL THEN '几何无法解析（' || s.wkb_error || '）'
            ELSE c.reason
       END AS geom_reason,
       CASE WHEN s.clean THEN s.outside ELSE coalesce(c.outside, false) END AS outside_county,
       s.reject IS NULL AND current_setting('weipian.outside_rule') = 'clip'
           AND CASE WHEN s.clean THEN s.outside ELSE coalesce(c.outside, false) END AS clipped,
       s.reject IS NULL
           AND (s.clean OR c.clean OR c.repaired IS NOT NULL)
           AND NOT CASE WHEN s.clean THEN s.outside ELSE coalesce(c.outside, false) END AS usable
FROM stage s
LEFT JOIN stage_check c USING (feature_index)
WHERE s.feature_index BETWEEN current_setting('weipian.first')::integer
                          AND current_setting('weipian.last')::integer;
