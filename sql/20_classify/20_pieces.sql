-- Classify, step 2: every polygon of the batch through weipian.classify_polygon
-- (sql/20_classify/00_classify_polygon.sql: overlays, desk pieces, judgement,
-- final pieces, township pieces, measures), in one statement that PostgreSQL
-- shares out among parallel workers. It reads weipian.change_polygon, not the
-- temp table cls_polygon: parallel workers cannot see temp tables.
-- Then the judgement per polygon and the measured pieces, as 60_publish.sql
-- reads them.
-- Parameters (set_config): weipian.county_code, weipian.batch, weipian.min_part_m2.
-- etldoc: change_polygon -> cls_out
-- etldoc: cls_out -> cls_judgement
-- etldoc: cls_out -> cls_piece

CREATE TEMP TABLE cls_out ON COMMIT DROP AS
SELECT (s.r).*
FROM (
    -- in the select list, so the planner counts the function's cost once per
    -- polygon (a LATERAL function scan is costed once) and shares the rows out
    SELECT weipian.classify_polygon(c.id, current_setting('weipian.min_part_m2')::double precision) AS r
    FROM weipian.change_polygon c
    WHERE c.county_code = current_setting('weipian.county_code')
      AND c.batch = current_setting('weipian.batch')
) s;

CREATE TEMP TABLE cls_judgement ON COMMIT DROP AS
SELECT DISTINCT ON (change_id) change_id AS id, auto_class, final_class AS class, sfbh, pdlx, polygon_m2
FROM cls_out
ORDER BY change_id;

ALTER TABLE cls_judgement ADD PRIMARY KEY (id);

CREATE TEMP TABLE cls_piece ON COMMIT DROP AS
SELECT change_id AS id, class, subtype, xzqdm, geom, area_m2, cultivated_m2, farmland_m2,
       outside_ubg_m2, in_eco_m2
FROM cls_out
WHERE class IS NOT NULL;
