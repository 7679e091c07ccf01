-- 违法用地分类统计表: per township (and outside every township, and the county),
-- per illegal sub-type: polygons (宗), area, 耕地 and 永久基本农田 (亩).
-- An illegal polygon counts once, under its main sub-type (the illegal sub-type with
-- the largest area; ties in the order 未报即用, 未批先建, 临时用地超期, 未备案设施农用地;
-- same rule as 10_polygon_sheet.sql), in its own township. Areas are the illegal
-- pieces of every polygon, in the township each piece lies in, summed unrounded and
-- rounded once (Decisions 5, 7, 13).
-- unit: 'township' (xzqdm set), 'outside' (xzqdm NULL) or 'county'.
-- Parameters: weipian.county_code, weipian.batches.
-- etldoc: change_result, change_piece, township, subtype -> tables.xlsx 违法用地分类统计表

WITH selected_batches AS (
    SELECT unnest(string_to_array(current_setting('weipian.batches'), ',')) AS batch
),
illegal_polygons AS (
    SELECT r.xzqdm,
           CASE WHEN r.wbjy_m2 >= greatest(r.wpxj_m2, r.lsyd_cq_m2, r.ssny_wba_m2) THEN 'wbjy'
                WHEN r.wpxj_m2 >= greatest(r.lsyd_cq_m2, r.ssny_wba_m2) THEN 'wpxj'
                WHEN r.lsyd_cq_m2 >= r.ssny_wba_m2 THEN 'lsyd_cq'
                ELSE 'ssny_wba' END AS subtype
    FROM weipian.change_result r
    JOIN selected_batches b ON b.batch = r.batch
    WHERE r.county_code = current_setting('weipian.county_code') AND r.class = 'illegal'
),
illegal_pieces AS (
    SELECT p.xzqdm, p.subtype, p.area_m2, p.cultivated_m2, p.farmland_m2
    FROM weipian.change_piece p
    JOIN selected_batches b ON b.batch = p.batch
    WHERE p.county_code = current_setting('weipian.county_code') AND p.class = 'illegal'
),
counts AS (
    SELECT xzqdm, subtype, GROUPING(xzqdm) = 1 AS is_county, count(*) AS n
    FROM illegal_polygons
    GROUP BY GROUPING SETS ((xzqdm, subtype), (subtype))
),
areas AS (
    SELECT xzqdm, subtype, GROUPING(xzqdm) = 1 AS is_county,
           sum(area_m2) AS area_m2, sum(cultivated_m2) AS cultivated_m2, sum(farmland_m2) AS farmland_m2
    FROM illegal_pieces
    GROUP BY GROUPING SETS ((xzqdm, subtype), (subtype))
),
units AS (
    SELECT DISTINCT 'township' AS unit, xzqdm FROM weipian.township
    WHERE county_code = current_setting('weipian.county_code')
    UNION ALL SELECT 'outside', NULL
    UNION ALL SELECT 'county', NULL
),
subtypes AS (
    SELECT subtype FROM weipian.subtype WHERE class = 'illegal'
),
final AS (
    SELECT u.unit, u.xzqdm, s.subtype,
           coalesce(c.n, 0) AS n,
           round((coalesce(a.area_m2, 0) * 0.0015)::numeric, 2)       AS area_mu,
           round((coalesce(a.cultivated_m2, 0) * 0.0015)::numeric, 2) AS cultivated_mu,
           round((coalesce(a.farmland_m2, 0) * 0.0015)::numeric, 2)   AS farmland_mu
    FROM units u
    CROSS JOIN subtypes s
    LEFT JOIN counts c ON c.subtype = s.subtype AND c.is_county = (u.unit = 'county')
                      AND c.xzqdm IS NOT DISTINCT FROM u.xzqdm
    LEFT JOIN areas a ON a.subtype = s.subtype AND a.is_county = (u.unit = 'county')
                     AND a.xzqdm IS NOT DISTINCT FROM u.xzqdm
)
SELECT * FROM final
ORDER BY unit, xzqdm COLLATE "C", subtype;
