-- 内外业对比表: desk judgement (auto_class) against the final class, for the
-- polygons that have a field check (SFBH or PDLX), per township and for the county.
-- Polygons without a field check keep the desk class by construction and would
-- only inflate the agreement, so they are left out. Counts go to the polygon's
-- township; xzqdm NULL with is_county false is the part outside every township.
-- Parameters: weipian.county_code, weipian.batches.
-- etldoc: change_result -> tables.xlsx 内外业对比表

WITH selected_batches AS (
    SELECT unnest(string_to_array(current_setting('weipian.batches'), ',')) AS batch
),
checked AS (
    SELECT r.xzqdm, r.auto_class, r.class
    FROM weipian.change_result r
    JOIN selected_batches b ON b.batch = r.batch
    WHERE r.county_code = current_setting('weipian.county_code')
      AND (r.sfbh IS NOT NULL OR r.pdlx IS NOT NULL)
),
final AS (
    SELECT xzqdm, GROUPING(xzqdm) = 1 AS is_county, auto_class, class, count(*) AS n
    FROM checked
    GROUP BY GROUPING SETS ((xzqdm, auto_class, class), (auto_class, class))
)
SELECT * FROM final
ORDER BY is_county, xzqdm COLLATE "C", auto_class, class;
