-- 0022 one place for what a DLBM code of a delivery means: weipian.dlbm_codes.
--
-- Given the distinct DLBM values of a load (as read: spaces, 103 for 0103, 1.0
-- …), each one's normalised code (Decision 12), land group (the longest
-- matching prefix of weipian.land_class; unknown codes are 'unused') and
-- whether it is 耕地. Used by sql/10_ingest/landuse.sql and farmland.sql for
-- the features staged in the database, and by pipeline/ingest.py for the
-- clean features it copies straight into the layer's table, so both ways give
-- a parcel the same class.

CREATE OR REPLACE FUNCTION weipian.dlbm_codes(sources text[])
RETURNS TABLE (dlbm_source text, dlbm text, land_group text, is_cultivated boolean)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT d.dlbm_source, n.dlbm,
           coalesce(lc.land_group, 'unused'),
           coalesce(lc.is_cultivated, false)
    FROM unnest(sources) AS d (dlbm_source)
    CROSS JOIN LATERAL (SELECT weipian.normalize_dlbm(d.dlbm_source) AS dlbm) n
    LEFT JOIN LATERAL (SELECT * FROM weipian.land_class_of(n.dlbm)) lc ON true
$$;

COMMENT ON FUNCTION weipian.dlbm_codes(text[]) IS
    '地类编码（原值）→ 规范编码、地类分组、是否耕地；入库时每个不同的原值查一次';
