-- Classify, step 2: every polygon of the batch through weipian.classify_polygon
-- (sql/20_classify/00_classify_polygon.sql: desk pieces, judgement, final
-- pieces, township pieces, measures), in one statement that PostgreSQL shares
-- out among parallel workers. It reads weipian.change_polygon, not the temp
-- table cls_polygon: parallel workers cannot see temp tables.
--
-- What is the same for every polygon (the class order, whether the plan layer
-- has 城镇开发边界 / 生态保护红线) or found by a join (the rule, the effective
-- field check) is passed in; the function looks up the reference polygons near
-- P itself. (Those lookups as LATERAL subqueries here would keep the statement
-- from running in parallel workers: PostgreSQL 15 does not run a join with a
-- correlated subquery in a worker.)
-- Then the judgement per polygon and the measured pieces, as 60_publish.sql
-- reads them.
-- Parameters (set_config): weipian.county_code, weipian.batch, weipian.min_part_m2.
-- etldoc: change_polygon, change_type, field_check, plan_zone, land_judgement -> cls_out
-- etldoc: cls_out -> cls_judgement
-- etldoc: cls_out -> cls_piece

CREATE TEMP TABLE cls_out ON COMMIT DROP AS
SELECT (s.r).*
FROM (
    -- in the select list, so the planner counts the function's cost once per
    -- polygon and shares the rows out
    SELECT weipian.classify_polygon(
               c.id, c.county_code, c.geom, coalesce(ct.rule, 'construction'), c.hsx,
               fc.sfbh, fc.pdlx,
               -- computed once (initplans; a join to a one-row subquery would keep
               -- the statement out of the parallel workers)
               (SELECT array_agg(lj.class ORDER BY lj.priority) FROM weipian.land_judgement lj),
               (SELECT coalesce(bool_or(z.gklx = '城镇开发边界'), false) FROM weipian.plan_zone z
                WHERE z.county_code = current_setting('weipian.county_code')),
               (SELECT coalesce(bool_or(z.gklx = '生态保护红线'), false) FROM weipian.plan_zone z
                WHERE z.county_code = current_setting('weipian.county_code')),
               current_setting('weipian.min_part_m2')::double precision) AS r
    FROM weipian.change_polygon c
    LEFT JOIN weipian.change_type ct ON ct.bhlx = c.bhlx
    -- the effective field check: the last row for the JCBH among the layers of
    -- this batch or without batch (Decision 1)
    LEFT JOIN (
        SELECT DISTINCT ON (f.jcbh) f.jcbh, f.sfbh, f.pdlx
        FROM weipian.field_check f
        WHERE f.county_code = current_setting('weipian.county_code')
          AND (f.batch IS NULL OR f.batch = current_setting('weipian.batch'))
        ORDER BY f.jcbh, f.layer_index DESC, f.feature_index DESC
    ) fc ON fc.jcbh = c.jcbh
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
