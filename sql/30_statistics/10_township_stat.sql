-- Statistics for a selection of batches (one batch, a year, a year range):
-- one row per township of the township layer, ranked, and the county row last.
-- Counts (宗) go to the polygon's township; areas (亩) to the township each
-- piece lies in; parts outside every township count only in the county row
-- (Decision 5). Unrounded m² are added and rounded once (Decision 13).
-- Parameters: weipian.county_code, weipian.selection (label), weipian.batches
-- (comma-separated batch names).
-- etldoc: change_result, change_piece, township -> township_stat

DELETE FROM weipian.township_stat
WHERE county_code = current_setting('weipian.county_code')
  AND selection = current_setting('weipian.selection');

INSERT INTO weipian.township_stat
WITH selected_batches AS (
    SELECT unnest(string_to_array(current_setting('weipian.batches'), ',')) AS batch
),
results AS (
    SELECT r.*
    FROM weipian.change_result r
    JOIN selected_batches b ON b.batch = r.batch
    WHERE r.county_code = current_setting('weipian.county_code')
),
pieces AS (
    SELECT p.*
    FROM weipian.change_piece p
    JOIN selected_batches b ON b.batch = p.batch
    WHERE p.county_code = current_setting('weipian.county_code')
),
townships AS (
    SELECT xzqdm, min(xzqmc) AS xzqmc
    FROM weipian.township
    WHERE county_code = current_setting('weipian.county_code')
    GROUP BY xzqdm
),
-- one set of counts per township, and (xzqdm NULL from the grouping set) the county
counts AS (
    SELECT xzqdm, GROUPING(xzqdm) = 1 AS is_county,
           count(*)                                     AS n_total,
           count(*) FILTER (WHERE class = 'legal')       AS n_legal,
           count(*) FILTER (WHERE class = 'unchanged')   AS n_unchanged,
           count(*) FILTER (WHERE class = 'agri_adjust') AS n_agri,
           count(*) FILTER (WHERE class = 'illegal')     AS n_illegal,
           count(*) FILTER (WHERE class = 'illegal' AND illegal_cultivated_m2 * 0.0015 >= 0.005)
                                                        AS n_illegal_cultivated
    FROM results
    GROUP BY GROUPING SETS ((xzqdm), ())
),
areas AS (
    SELECT xzqdm, GROUPING(xzqdm) = 1 AS is_county,
           sum(area_m2)                                            AS area_m2,
           sum(area_m2) FILTER (WHERE class = 'legal')             AS legal_m2,
           sum(area_m2) FILTER (WHERE class = 'unchanged')         AS unchanged_m2,
           sum(area_m2) FILTER (WHERE class = 'agri_adjust')       AS agri_m2,
           sum(area_m2) FILTER (WHERE class = 'illegal')           AS illegal_m2,
           sum(cultivated_m2) FILTER (WHERE class = 'legal')       AS legal_cultivated_m2,
           sum(cultivated_m2) FILTER (WHERE class = 'illegal')     AS illegal_cultivated_m2,
           sum(farmland_m2) FILTER (WHERE class = 'illegal')       AS illegal_farmland_m2
    FROM pieces
    GROUP BY GROUPING SETS ((xzqdm), ())
),
rows_m2 AS (
    SELECT false AS is_county, t.xzqdm, t.xzqmc,
           c.n_total, c.n_legal, c.n_unchanged, c.n_agri, c.n_illegal, c.n_illegal_cultivated,
           a.area_m2, a.legal_m2, a.unchanged_m2, a.agri_m2, a.illegal_m2,
           a.legal_cultivated_m2, a.illegal_cultivated_m2, a.illegal_farmland_m2
    FROM townships t
    LEFT JOIN counts c ON c.xzqdm = t.xzqdm AND NOT c.is_county
    LEFT JOIN areas a ON a.xzqdm = t.xzqdm AND NOT a.is_county
    UNION ALL
    SELECT true, cty.code, cty.name,
           c.n_total, c.n_legal, c.n_unchanged, c.n_agri, c.n_illegal, c.n_illegal_cultivated,
           a.area_m2, a.legal_m2, a.unchanged_m2, a.agri_m2, a.illegal_m2,
           a.legal_cultivated_m2, a.illegal_cultivated_m2, a.illegal_farmland_m2
    FROM weipian.county cty
    LEFT JOIN counts c ON c.is_county
    LEFT JOIN areas a ON a.is_county
    WHERE cty.code = current_setting('weipian.county_code')
),
reported AS (
    SELECT r.is_county, r.xzqdm, r.xzqmc,
           coalesce(r.n_total, 0) AS n_total, coalesce(r.n_legal, 0) AS n_legal,
           coalesce(r.n_unchanged, 0) AS n_unchanged, coalesce(r.n_agri, 0) AS n_agri,
           coalesce(r.n_illegal, 0) AS n_illegal,
           coalesce(r.n_illegal_cultivated, 0) AS n_illegal_cultivated,
           round((coalesce(r.area_m2, 0) * 0.0015)::numeric, 2)               AS area_mu,
           round((coalesce(r.legal_m2, 0) * 0.0015)::numeric, 2)              AS legal_mu,
           round((coalesce(r.unchanged_m2, 0) * 0.0015)::numeric, 2)          AS unchanged_mu,
           round((coalesce(r.agri_m2, 0) * 0.0015)::numeric, 2)               AS agri_mu,
           round((coalesce(r.illegal_m2, 0) * 0.0015)::numeric, 2)            AS illegal_mu,
           round((coalesce(r.illegal_cultivated_m2, 0) * 0.0015)::numeric, 2) AS illegal_cultivated_mu,
           round((coalesce(r.illegal_farmland_m2, 0) * 0.0015)::numeric, 2)   AS illegal_farmland_mu,
           round(((coalesce(r.legal_m2, 0) + coalesce(r.illegal_m2, 0)) * 0.0015)::numeric, 2)
                                                                               AS new_construction_mu,
           round(((coalesce(r.legal_cultivated_m2, 0) + coalesce(r.illegal_cultivated_m2, 0)) * 0.0015)::numeric, 2)
                                                                               AS new_cultivated_mu,
           CASE WHEN coalesce(r.legal_cultivated_m2, 0) + coalesce(r.illegal_cultivated_m2, 0) > 0
                THEN round((coalesce(r.illegal_cultivated_m2, 0)
                            / (coalesce(r.legal_cultivated_m2, 0) + coalesce(r.illegal_cultivated_m2, 0)))::numeric, 4)
           END AS illegal_cultivated_ratio
    FROM rows_m2 r
),
ranked AS (
    SELECT rp.*,
           CASE WHEN NOT rp.is_county THEN
               row_number() OVER (PARTITION BY rp.is_county
                                  ORDER BY rp.illegal_cultivated_mu DESC, rp.illegal_mu DESC, rp.xzqdm COLLATE "C")
           END AS rank
    FROM reported rp
)
SELECT current_setting('weipian.county_code'), current_setting('weipian.selection'),
       CASE WHEN is_county THEN 1000000 ELSE rank END AS ord,
       xzqdm, xzqmc, n_total, n_legal, n_unchanged, n_agri, n_illegal, n_illegal_cultivated,
       area_mu, legal_mu, unchanged_mu, agri_mu, illegal_mu, illegal_cultivated_mu,
       illegal_farmland_mu, new_construction_mu, new_cultivated_mu, illegal_cultivated_ratio, rank
FROM ranked;
