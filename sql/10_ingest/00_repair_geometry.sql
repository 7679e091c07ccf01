-- Ingest, step 1 for layers with geometry: parse, transform, repair.
-- domain.md Decision 11: transform to the working CRS, then make valid (GEOS
-- "linework", as ST_MakeValid), keep the polygonal part, drop Z/M.
-- etldoc: stage -> stage_fixed
DROP TABLE IF EXISTS stage_fixed;
CREATE TEMP TABLE stage_fixed ON COMMIT DROP AS
WITH parsed AS (
    SELECT s.*,
           CASE WHEN s.wkb IS NULL THEN NULL
                ELSE ST_Force2D(ST_Transform(
                         ST_GeomFromWKB(s.wkb, current_setting('weipian.src_srid')::integer),
                         current_setting('weipian.work_srid')::integer))
           END AS g
    FROM stage s
),
checked AS (
    SELECT p.*,
           p.g IS NOT NULL AND NOT ST_IsEmpty(p.g)
               AND (ST_IsValidDetail(p.g)).valid
               AND GeometryType(p.g) IN ('POLYGON', 'MULTIPOLYGON') AS clean
    FROM parsed p
),
fixed AS (
    SELECT c.*,
           CASE WHEN c.g IS NULL OR ST_IsEmpty(c.g) THEN NULL
                WHEN c.clean THEN ST_Multi(c.g)
                ELSE weipian.polygonal(ST_MakeValid(c.g))
           END AS geom
    FROM checked c
)
SELECT f.*,
       NOT f.clean AND f.geom IS NOT NULL AS repaired,
       CASE WHEN f.g IS NULL OR ST_IsEmpty(f.g) THEN '几何为空'
            WHEN f.geom IS NULL THEN '几何修复后无面状部分（' || GeometryType(f.g) || '）'
       END AS geom_reason,
       f.reject IS NULL AND f.geom IS NOT NULL AS usable
FROM fixed f;

ALTER TABLE stage_fixed DROP COLUMN wkb, DROP COLUMN g;
