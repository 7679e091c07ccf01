-- Classify, step 0: bring the subdivided helper tables (township_part,
-- farmland_part, plan_zone_part; migration 0020) up to date with the county's
-- layers. Nothing to do unless a layer was loaded since the last run.
-- Parameter (set_config): weipian.county_code.
-- etldoc: township, farmland, plan_zone -> township_part, farmland_part, plan_zone_part

SELECT weipian.refresh_parts(current_setting('weipian.county_code'));
