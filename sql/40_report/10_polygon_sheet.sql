-- 变化图斑情况统计表: one row per change polygon of the selection, areas in 亩
-- rounded once per cell (as township_stat rounds), Chinese class names.
-- Parameters: weipian.county_code, weipian.batches (comma-separated batch names).
-- etldoc: change_result, land_judgement -> tables.xlsx 变化图斑情况统计表

WITH selected_batches AS (
    SELECT unnest(string_to_array(current_setting('weipian.batches'), ',')) AS batch
),
results AS (
    SELECT r.*
    FROM weipian.change_result r
    JOIN selected_batches b ON b.batch = r.batch
    WHERE r.county_code = current_setting('weipian.county_code')
),
final AS (
    SELECT r.jcbh, r.batch, r.xzqdm, r.xzqmc, r.bhlx, r.hsx,
           desk.name_zh AS auto_class_zh,
           r.sfbh,
           checked.name_zh AS pdlx_zh,
           fin.name_zh AS class_zh,
           r.class, r.auto_class,
           (r.sfbh IS NOT NULL OR r.pdlx IS NOT NULL) AS field_checked,
           round((r.area_m2 * 0.0015)::numeric, 2)               AS area_mu,
           round((r.legal_m2 * 0.0015)::numeric, 2)              AS legal_mu,
           round((r.unchanged_m2 * 0.0015)::numeric, 2)          AS unchanged_mu,
           round((r.agri_m2 * 0.0015)::numeric, 2)               AS agri_mu,
           round((r.illegal_m2 * 0.0015)::numeric, 2)            AS illegal_mu,
           round((r.cultivated_m2 * 0.0015)::numeric, 2)         AS cultivated_mu,
           round((r.farmland_m2 * 0.0015)::numeric, 2)           AS farmland_mu,
           round((r.illegal_cultivated_m2 * 0.0015)::numeric, 2) AS illegal_cultivated_mu,
           round((r.illegal_farmland_m2 * 0.0015)::numeric, 2)   AS illegal_farmland_mu,
           round((r.wbjy_m2 * 0.0015)::numeric, 2)               AS wbjy_mu,
           round((r.wpxj_m2 * 0.0015)::numeric, 2)               AS wpxj_mu,
           round((r.lsyd_cq_m2 * 0.0015)::numeric, 2)            AS lsyd_cq_mu,
           round((r.ssny_wba_m2 * 0.0015)::numeric, 2)           AS ssny_wba_mu,
           round((r.bnpbj_m2 * 0.0015)::numeric, 2)              AS bnpbj_mu,
           round((r.wnpbj_m2 * 0.0015)::numeric, 2)              AS wnpbj_mu,
           round((r.illegal_outside_ubg_m2 * 0.0015)::numeric, 2) AS illegal_outside_ubg_mu,
           round((r.illegal_in_eco_m2 * 0.0015)::numeric, 2)     AS illegal_in_eco_mu,
           main.name_zh AS main_subtype_zh
    FROM results r
    -- an illegal polygon's main sub-type: the illegal sub-type with the largest area,
    -- ties in the order of the tables (same rule as 30_illegal_subtypes.sql)
    LEFT JOIN weipian.subtype main ON r.class = 'illegal' AND main.subtype =
        CASE WHEN r.wbjy_m2 >= greatest(r.wpxj_m2, r.lsyd_cq_m2, r.ssny_wba_m2) THEN 'wbjy'
             WHEN r.wpxj_m2 >= greatest(r.lsyd_cq_m2, r.ssny_wba_m2) THEN 'wpxj'
             WHEN r.lsyd_cq_m2 >= r.ssny_wba_m2 THEN 'lsyd_cq'
             ELSE 'ssny_wba' END
    JOIN weipian.land_judgement fin ON fin.class = r.class
    JOIN weipian.land_judgement desk ON desk.class = r.auto_class
    LEFT JOIN weipian.land_judgement checked ON checked.class = r.pdlx
)
SELECT * FROM final
ORDER BY batch COLLATE "C", jcbh COLLATE "C";
