-- The part of a selection that lies outside every township (Decision 5): polygons
-- whose largest share is in no township (counts) and pieces in no township (areas).
-- township_stat counts them in the county row only; the tables show them as a row
-- of their own, so the township rows and this row add up to the county.
-- Same columns and rounding as 30_statistics/10_township_stat.sql.
-- Parameters: weipian.county_code, weipian.batches.
-- etldoc: change_result, change_piece -> tables.xlsx 乡镇界外

WITH selected_batches AS (
    SELECT unnest(string_to_array(current_setting('weipian.batches'), ',')) AS batch
),
counts AS (
    SELECT count(*)                                     AS n_total,
           count(*) FILTER (WHERE class = 'legal')       AS n_legal,
           count(*) FILTER (WHERE class = 'unchanged')   AS n_unchanged,
           count(*) FILTER (WHERE class = 'agri_adjust') AS n_agri,
           count(*) FILTER (WHERE class = 'illegal')     AS n_illegal,
           count(*) FILTER (WHERE class = 'illegal' AND illegal_cultivated_m2 * 0.0015 >= 0.005)
                                                        AS n_illegal_cultivated
    FROM weipian.change_result r
    JOIN selected_batches b ON b.batch = r.batch
    WHERE r.county_code = current_setting('weipian.county_code') AND r.xzqdm IS NULL
),
areas AS (
    SELECT coalesce(sum(area_m2), 0)                                        AS area_m2,
           coalesce(sum(area_m2) FILTER (WHERE class = 'legal'), 0)         AS legal_m2,
           coalesce(sum(area_m2) FILTER (WHERE class = 'unchanged'), 0)     AS unchanged_m2,
           coalesce(sum(area_m2) FILTER (WHERE class = 'agri_adjust'), 0)   AS agri_m2,
           coalesce(sum(area_m2) FILTER (WHERE class = 'illegal'), 0)       AS illegal_m2,
           coalesce(sum(cultivated_m2) FILTER (WHERE class = 'legal'), 0)   AS legal_cultivated_m2,
           coalesce(sum(cultivated_m2) FILTER (WHERE class = 'illegal'), 0) AS illegal_cultivated_m2,
           coalesce(sum(farmland_m2) FILTER (WHERE class = 'illegal'), 0)   AS illegal_farmland_m2
    FROM weipian.change_piece p
    JOIN selected_batches b ON b.batch = p.batch
    WHERE p.county_code = current_setting('weipian.county_code') AND p.xzqdm IS NULL
),
final AS (
    SELECT c.n_total, c.n_legal, c.n_unchanged, c.n_agri, c.n_illegal, c.n_illegal_cultivated,
           round((a.area_m2 * 0.0015)::numeric, 2)               AS area_mu,
           round((a.legal_m2 * 0.0015)::numeric, 2)              AS legal_mu,
           round((a.unchanged_m2 * 0.0015)::numeric, 2)          AS unchanged_mu,
           round((a.agri_m2 * 0.0015)::numeric, 2)               AS agri_mu,
           round((a.illegal_m2 * 0.0015)::numeric, 2)            AS illegal_mu,
           round((a.illegal_cultivated_m2 * 0.0015)::numeric, 2) AS illegal_cultivated_mu,
           round((a.illegal_farmland_m2 * 0.0015)::numeric, 2)   AS illegal_farmland_mu,
           round(((a.legal_m2 + a.illegal_m2) * 0.0015)::numeric, 2) AS new_construction_mu,
           round(((a.legal_cultivated_m2 + a.illegal_cultivated_m2) * 0.0015)::numeric, 2)
                                                                 AS new_cultivated_mu,
           CASE WHEN a.legal_cultivated_m2 + a.illegal_cultivated_m2 > 0
                THEN round((a.illegal_cultivated_m2
                            / (a.legal_cultivated_m2 + a.illegal_cultivated_m2))::numeric, 4)
           END AS illegal_cultivated_ratio
    FROM counts c CROSS JOIN areas a
)
SELECT * FROM final;
