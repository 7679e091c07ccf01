-- Ingest, last step: quarantine what could not be used, and account for every
-- feature read: n_read = n_loaded + n_repaired + n_quarantined + n_clipped.
-- A clipped feature (a reference-layer feature wholly outside the county) is
-- counted, not quarantined; a change polygon outside the county is quarantined.
-- etldoc: stage_fixed -> quarantine
INSERT INTO weipian.quarantine (county_code, source_id, feature_index, reason, attributes)
SELECT current_setting('weipian.county_code'),
       current_setting('weipian.source_id')::bigint,
       s.feature_index,
       concat_ws('；', s.reject, s.geom_reason,
                 CASE WHEN s.outside_county THEN '位于县域外：距乡镇界超过 ' || current_setting('weipian.outside_m')
                                          || ' 米，不属于本县' END),
       coalesce(s.raw_attrs::jsonb, a.attributes)
FROM stage_fixed s
-- without raw attributes (a geometry problem): the mapped fields under their
-- source names (weipian.source_names: standard name → source name)
CROSS JOIN LATERAL (
    SELECT jsonb_object_agg(n.value, f.value) AS attributes
    FROM jsonb_each(to_jsonb(s)) f
    JOIN jsonb_each_text(current_setting('weipian.source_names')::jsonb) n ON n.key = f.key
) a
WHERE NOT s.usable AND NOT s.clipped;

UPDATE weipian.source src
SET n_loaded      = a.n_loaded,
    n_repaired    = a.n_repaired,
    n_quarantined = a.n_quarantined,
    n_clipped     = a.n_clipped
FROM (
    SELECT count(*) FILTER (WHERE usable AND NOT repaired)     AS n_loaded,
           count(*) FILTER (WHERE usable AND repaired)         AS n_repaired,
           count(*) FILTER (WHERE NOT usable AND NOT clipped)  AS n_quarantined,
           count(*) FILTER (WHERE clipped)                     AS n_clipped
    FROM stage_fixed
) a
WHERE src.id = current_setting('weipian.source_id')::bigint;
