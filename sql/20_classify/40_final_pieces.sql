-- Classify, step 4: the final pieces. Where the final class is the desk class
-- the desk pieces stand (a confirmed 5 % overbuild stays 5 % illegal). Where a
-- field check overrides, all of P takes the final class, with sub-types as
-- Decision 2 says: legal -> 本年批准本年建设 where a V approval dated in Y covers
-- it, the rest 往年批准本年建设; illegal -> 未备案设施农用地 for BHLX 设施农用地,
-- otherwise 未批先建 / 临时用地超期 / 未报即用 over the whole polygon, in that order.
-- etldoc: cls_desk, cls_judgement, cls_overlay -> cls_final

CREATE TEMP TABLE cls_final ON COMMIT DROP AS
SELECT d.id, d.class, d.subtype, d.geom
FROM cls_desk d
JOIN cls_judgement j ON j.id = d.id
WHERE j.class = j.auto_class
UNION ALL
SELECT p.id, x.class, x.subtype, x.geom
FROM cls_polygon p
JOIN cls_judgement j ON j.id = p.id AND j.class <> j.auto_class
JOIN cls_overlay o ON o.id = p.id
CROSS JOIN LATERAL (
    SELECT j.class = 'illegal' AND p.rule <> 'facility' AS by_approval,
           CASE WHEN j.class = 'illegal' AND p.rule <> 'facility'
                THEN weipian.diff(p.geom, o.l) END AS not_late
) s
CROSS JOIN LATERAL (VALUES
    ('unchanged',   NULL,       CASE WHEN j.class = 'unchanged' THEN p.geom END),
    ('agri_adjust', NULL,       CASE WHEN j.class = 'agri_adjust' THEN p.geom END),
    ('legal',       'bnpbj',    CASE WHEN j.class = 'legal' THEN weipian.inter(p.geom, o.vy) END),
    ('legal',       'wnpbj',    CASE WHEN j.class = 'legal' THEN weipian.diff(p.geom, o.vy) END),
    ('illegal',     'ssny_wba', CASE WHEN j.class = 'illegal' AND p.rule = 'facility' THEN p.geom END),
    ('illegal',     'wpxj',     CASE WHEN s.by_approval THEN weipian.inter(p.geom, o.l) END),
    ('illegal',     'lsyd_cq',  CASE WHEN s.by_approval THEN weipian.inter(s.not_late, o.e) END),
    ('illegal',     'wbjy',     CASE WHEN s.by_approval THEN weipian.diff(s.not_late, o.e) END)
) x (class, subtype, geom)
WHERE x.geom IS NOT NULL;
