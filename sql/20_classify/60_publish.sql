-- Classify, step 6: replace the batch's published pieces and results in the
-- caller's transaction, so readers see the old complete results or the new.
-- A polygon belongs to the township holding its largest ellipsoidal share,
-- ties (to 0.0001 m²) to the smaller code (Decision 5).
-- etldoc: cls_piece -> change_piece
-- etldoc: cls_piece, cls_judgement, cls_polygon -> change_result

DELETE FROM weipian.change_piece
WHERE county_code = current_setting('weipian.county_code') AND batch = current_setting('weipian.batch');
DELETE FROM weipian.change_result
WHERE county_code = current_setting('weipian.county_code') AND batch = current_setting('weipian.batch');

-- The class and sub-type of every piece are checked here at once; then the
-- row-by-row foreign-key checks of change_piece (a fifth of this step) are
-- skipped while the pieces go in, as the ingest does for source_id
-- (session_replication_role = replica, as pg_restore does; only a superuser may
-- set it, otherwise the checks run as usual).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM cls_piece pc
               WHERE NOT EXISTS (SELECT 1 FROM weipian.land_judgement j WHERE j.class = pc.class)
                  OR (pc.subtype IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM weipian.subtype t WHERE t.subtype = pc.subtype))) THEN
        RAISE EXCEPTION 'a piece has a class or sub-type outside weipian.land_judgement / weipian.subtype';
    END IF;
END
$$;
SELECT set_config('session_replication_role', 'replica', true) WHERE current_setting('is_superuser') = 'on';

INSERT INTO weipian.change_piece (county_code, batch, change_id, jcbh, class, subtype, xzqdm,
                                  area_m2, cultivated_m2, farmland_m2, outside_ubg_m2, in_eco_m2, geom)
SELECT p.county_code, p.batch, p.id, p.jcbh, pc.class, pc.subtype, pc.xzqdm,
       pc.area_m2, pc.cultivated_m2, pc.farmland_m2, pc.outside_ubg_m2, pc.in_eco_m2, pc.geom
FROM cls_piece pc
JOIN cls_polygon p ON p.id = pc.id
ORDER BY p.jcbh, pc.class, pc.subtype, pc.xzqdm;

SELECT set_config('session_replication_role', 'origin', true) WHERE current_setting('is_superuser') = 'on';

WITH township_share AS (
    SELECT DISTINCT ON (id) id, xzqdm
    FROM (SELECT id, xzqdm, sum(area_m2) AS a FROM cls_piece WHERE xzqdm IS NOT NULL GROUP BY id, xzqdm) s
    ORDER BY id, round(a::numeric, 4) DESC, xzqdm
),
names AS (
    SELECT xzqdm, min(xzqmc) AS xzqmc
    FROM weipian.township
    WHERE county_code = current_setting('weipian.county_code')
    GROUP BY xzqdm
),
sums AS (
    SELECT id,
           coalesce(sum(area_m2) FILTER (WHERE class = 'legal'), 0)       AS legal_m2,
           coalesce(sum(area_m2) FILTER (WHERE class = 'unchanged'), 0)   AS unchanged_m2,
           coalesce(sum(area_m2) FILTER (WHERE class = 'agri_adjust'), 0) AS agri_m2,
           coalesce(sum(area_m2) FILTER (WHERE class = 'illegal'), 0)     AS illegal_m2,
           coalesce(sum(cultivated_m2), 0)                                AS cultivated_m2,
           coalesce(sum(farmland_m2), 0)                                  AS farmland_m2,
           coalesce(sum(cultivated_m2) FILTER (WHERE class = 'legal'), 0)   AS legal_cultivated_m2,
           coalesce(sum(cultivated_m2) FILTER (WHERE class = 'illegal'), 0) AS illegal_cultivated_m2,
           coalesce(sum(farmland_m2) FILTER (WHERE class = 'illegal'), 0)   AS illegal_farmland_m2,
           coalesce(sum(area_m2) FILTER (WHERE subtype = 'bnpbj'), 0)    AS bnpbj_m2,
           coalesce(sum(area_m2) FILTER (WHERE subtype = 'wnpbj'), 0)    AS wnpbj_m2,
           coalesce(sum(area_m2) FILTER (WHERE subtype = 'wpxj'), 0)     AS wpxj_m2,
           coalesce(sum(area_m2) FILTER (WHERE subtype = 'lsyd_cq'), 0)  AS lsyd_cq_m2,
           coalesce(sum(area_m2) FILTER (WHERE subtype = 'wbjy'), 0)     AS wbjy_m2,
           coalesce(sum(area_m2) FILTER (WHERE subtype = 'ssny_wba'), 0) AS ssny_wba_m2,
           sum(outside_ubg_m2) FILTER (WHERE class = 'illegal')          AS illegal_outside_ubg_m2,
           sum(in_eco_m2) FILTER (WHERE class = 'illegal')               AS illegal_in_eco_m2
    FROM cls_piece
    GROUP BY id
)
INSERT INTO weipian.change_result (
    county_code, batch, change_id, jcbh, xzqdm, xzqmc, class, auto_class, area_m2,
    legal_m2, unchanged_m2, agri_m2, illegal_m2, cultivated_m2, farmland_m2,
    legal_cultivated_m2, illegal_cultivated_m2, illegal_farmland_m2,
    bnpbj_m2, wnpbj_m2, wpxj_m2, lsyd_cq_m2, wbjy_m2, ssny_wba_m2,
    illegal_outside_ubg_m2, illegal_in_eco_m2, bhlx, hsx, sfbh, pdlx, geom)
SELECT p.county_code, p.batch, p.id, p.jcbh, ts.xzqdm, n.xzqmc, j.class, j.auto_class,
       j.polygon_m2,
       s.legal_m2, s.unchanged_m2, s.agri_m2, s.illegal_m2, s.cultivated_m2, s.farmland_m2,
       s.legal_cultivated_m2, s.illegal_cultivated_m2, s.illegal_farmland_m2,
       s.bnpbj_m2, s.wnpbj_m2, s.wpxj_m2, s.lsyd_cq_m2, s.wbjy_m2, s.ssny_wba_m2,
       s.illegal_outside_ubg_m2, s.illegal_in_eco_m2, p.bhlx, p.hsx, j.sfbh, j.pdlx, p.geom
FROM cls_polygon p
JOIN cls_judgement j ON j.id = p.id
LEFT JOIN sums s ON s.id = p.id
LEFT JOIN township_share ts ON ts.id = p.id
LEFT JOIN names n ON n.xzqdm = ts.xzqdm
ORDER BY p.jcbh;
