-- Classify, step 2: the desk judgement (内业), as pieces that partition P.
--   BHLX 农用地            -> all of P agri_adjust
--   P ∩ C                  -> unchanged
--   BHLX 设施农用地        -> (P − C) ∩ F agri_adjust, the rest illegal 未备案设施农用地
--   BHLX 建设用地/推填土   -> (P − C) ∩ V legal (∩ VY 本年批准本年建设, else 往年批准本年建设),
--                             the rest illegal: ∩ L 未批先建, then ∩ E 临时用地超期, then 未报即用
-- etldoc: cls_polygon, cls_overlay -> cls_desk

CREATE TEMP TABLE cls_desk ON COMMIT DROP AS
SELECT p.id, x.class, x.subtype, x.geom
FROM cls_polygon p
JOIN cls_overlay o ON o.id = p.id
CROSS JOIN LATERAL (
    SELECT CASE WHEN p.rule <> 'agricultural' THEN weipian.inter(p.geom, o.c) END AS unchanged,
           CASE WHEN p.rule <> 'agricultural' THEN weipian.diff(p.geom, o.c) END  AS rest
) s1
CROSS JOIN LATERAL (
    SELECT CASE WHEN p.rule = 'facility' THEN weipian.inter(s1.rest, o.f) END     AS agri,
           CASE WHEN p.rule = 'facility' THEN weipian.diff(s1.rest, o.f) END      AS unfiled,
           CASE WHEN p.rule = 'construction' THEN weipian.inter(s1.rest, o.v) END AS legal,
           CASE WHEN p.rule = 'construction' THEN weipian.diff(s1.rest, o.v) END  AS illegal
) s2
CROSS JOIN LATERAL (
    SELECT weipian.inter(s2.illegal, o.l) AS late,
           weipian.diff(s2.illegal, o.l)  AS not_late
) s3
CROSS JOIN LATERAL (VALUES
    ('agri_adjust', NULL,       CASE WHEN p.rule = 'agricultural' THEN p.geom END),
    ('unchanged',   NULL,       s1.unchanged),
    ('agri_adjust', NULL,       s2.agri),
    ('illegal',     'ssny_wba', s2.unfiled),
    ('legal',       'bnpbj',    weipian.inter(s2.legal, o.vy)),
    ('legal',       'wnpbj',    weipian.diff(s2.legal, o.vy)),
    ('illegal',     'wpxj',     s3.late),
    ('illegal',     'lsyd_cq',  weipian.inter(s3.not_late, o.e)),
    ('illegal',     'wbjy',     weipian.diff(s3.not_late, o.e))
) x (class, subtype, geom)
WHERE x.geom IS NOT NULL;
