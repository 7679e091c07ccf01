-- Ingest, last step: quarantine what could not be used, and account for every
-- feature read: n_read = n_loaded + n_repaired + n_quarantined.
-- etldoc: stage_fixed -> quarantine
INSERT INTO weipian.quarantine (county_code, source_id, feature_index, reason, attributes)
SELECT current_setting('weipian.county_code'),
       current_setting('weipian.source_id')::bigint,
       s.feature_index,
       concat_ws('；', s.reject, s.geom_reason),
       coalesce(s.raw_attrs,
                to_jsonb(s) - 'feature_index' - 'reject' - 'raw_attrs' - 'geom' - 'clean'
                            - 'repaired' - 'geom_reason' - 'usable')
FROM stage_fixed s
WHERE NOT s.usable;

UPDATE weipian.source src
SET n_loaded      = a.n_loaded,
    n_repaired    = a.n_repaired,
    n_quarantined = a.n_quarantined
FROM (
    SELECT count(*) FILTER (WHERE usable AND NOT repaired) AS n_loaded,
           count(*) FILTER (WHERE usable AND repaired)     AS n_repaired,
           count(*) FILTER (WHERE NOT usable)              AS n_quarantined
    FROM stage_fixed
) a
WHERE src.id = current_setting('weipian.source_id')::bigint;
