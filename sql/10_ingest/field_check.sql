-- etldoc: stage_fixed -> field_check
-- A layer without batch applies to its JCBH in every batch (Decision 1).
INSERT INTO weipian.field_check (county_code, source_id, feature_index, layer_index, batch, jcbh,
                                 sfbh, pdlx, hcr, hcrq, bz)
SELECT current_setting('weipian.county_code'), current_setting('weipian.source_id')::bigint,
       s.feature_index, current_setting('weipian.layer_index')::integer,
       nullif(current_setting('weipian.batch'), ''), s.jcbh, s.sfbh, s.pdlx, s.hcr, s.hcrq, s.bz
FROM stage_fixed s
WHERE s.usable;
