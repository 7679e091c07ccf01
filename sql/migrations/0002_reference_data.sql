-- 0002 reference data: land-class groups, approval types, change types, classes.
-- These are the rules of domain.md kept as data, so analysts can read them.

CREATE TABLE weipian.land_class (
    code_prefix    text PRIMARY KEY,
    land_group     text NOT NULL CHECK (land_group IN ('construction', 'agricultural', 'unused')),
    is_cultivated  boolean NOT NULL DEFAULT false,
    name           text NOT NULL
);
COMMENT ON TABLE weipian.land_class IS '三调工作分类地类编码前缀 → 大类；按最长匹配前缀归类，未匹配为未利用地';
COMMENT ON COLUMN weipian.land_class.code_prefix IS '地类编码前缀';
COMMENT ON COLUMN weipian.land_class.land_group IS 'construction 建设用地 / agricultural 农用地 / unused 未利用地';
COMMENT ON COLUMN weipian.land_class.is_cultivated IS '是否耕地';

INSERT INTO weipian.land_class (code_prefix, land_group, is_cultivated, name) VALUES
    ('01',   'agricultural', false, '耕地'),
    ('0101', 'agricultural', true,  '水田'),
    ('0102', 'agricultural', true,  '水浇地'),
    ('0103', 'agricultural', true,  '旱地'),
    ('02',   'agricultural', false, '种植园用地'),
    ('03',   'agricultural', false, '林地'),
    ('0401', 'agricultural', false, '天然牧草地'),
    ('0403', 'agricultural', false, '人工牧草地'),
    ('1006', 'agricultural', false, '农村道路'),
    ('1103', 'agricultural', false, '水库水面'),
    ('1104', 'agricultural', false, '坑塘水面'),
    ('1107', 'agricultural', false, '沟渠'),
    ('1202', 'agricultural', false, '设施农用地'),
    ('1203', 'agricultural', false, '田坎'),
    ('05',   'construction', false, '商业服务业用地'),
    ('0601', 'construction', false, '工业用地'),
    ('0602', 'construction', false, '采矿用地'),
    ('0603', 'construction', false, '盐田'),
    ('07',   'construction', false, '住宅用地'),
    ('08',   'construction', false, '公共管理与公共服务用地'),
    ('09',   'construction', false, '特殊用地'),
    ('1001', 'construction', false, '铁路用地'),
    ('1002', 'construction', false, '轨道交通用地'),
    ('1003', 'construction', false, '公路用地'),
    ('1004', 'construction', false, '城镇村道路用地'),
    ('1005', 'construction', false, '交通服务场站用地'),
    ('1007', 'construction', false, '机场用地'),
    ('1008', 'construction', false, '港口码头用地'),
    ('1009', 'construction', false, '管道运输用地'),
    ('1109', 'construction', false, '水工建筑用地'),
    ('1201', 'construction', false, '空闲地');

-- Normalise a DLBM as domain.md Decision 12 says: spaces removed, upper case, a
-- 3-digit number zero-padded (103 -> 0103; also 1 digit: 9 -> 09).
CREATE OR REPLACE FUNCTION weipian.normalize_dlbm(code text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN c ~ '^[0-9]{3}$' OR c ~ '^[0-9]$' THEN '0' || c
        ELSE nullif(c, '')
    END
    FROM (SELECT upper(regexp_replace(regexp_replace(coalesce(code, ''), '\s', '', 'g'), '\.0+$', '')) AS c) s
$$;

-- The land_class row of a code: the longest matching prefix.
CREATE OR REPLACE FUNCTION weipian.land_class_of(code text) RETURNS weipian.land_class
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT lc.* FROM weipian.land_class lc
    WHERE code LIKE lc.code_prefix || '%'
    ORDER BY length(lc.code_prefix) DESC
    LIMIT 1
$$;

CREATE TABLE weipian.approval_type (
    pzlx  text PRIMARY KEY,
    role  text NOT NULL CHECK (role IN ('construction', 'temporary', 'facility')),
    note  text
);
COMMENT ON TABLE weipian.approval_type IS '批准类型 → 判定作用；未列出的类型按建设用地批准处理并提示';
COMMENT ON COLUMN weipian.approval_type.role IS 'construction 建设用地批准 / temporary 临时用地（有效期） / facility 设施农用地备案';
INSERT INTO weipian.approval_type (pzlx, role, note) VALUES
    ('农用地转用', 'construction', '农用地转用审批'),
    ('征收',       'construction', '土地征收'),
    ('供地',       'construction', '供地'),
    ('宅基地',     'construction', '宅基地审批'),
    ('临时用地',   'temporary',    '临时用地，YXQZ 早于后时相即超期；无 YXQZ 不超期'),
    ('设施农用地', 'facility',     '设施农用地备案');

CREATE TABLE weipian.change_type (
    bhlx  text PRIMARY KEY,
    rule  text NOT NULL CHECK (rule IN ('construction', 'facility', 'agricultural')),
    note  text
);
COMMENT ON TABLE weipian.change_type IS '变化类型 → 判定规则；未列出的类型按建设用地判定并提示';
INSERT INTO weipian.change_type (bhlx, rule, note) VALUES
    ('建设用地',   'construction', '新增建设'),
    ('推填土',     'construction', '推填土'),
    ('设施农用地', 'facility',     '大棚、农业设施'),
    ('农用地',     'agricultural', '果园、林地、坑塘等农业结构调整');

CREATE TABLE weipian.land_judgement (
    class     text PRIMARY KEY,
    name_zh   text NOT NULL UNIQUE,
    priority  integer NOT NULL UNIQUE
);
COMMENT ON TABLE weipian.land_judgement IS '认定类型；priority 为图斑定类的先后顺序（违法、合法、农业结构调整、实地未变化）';
INSERT INTO weipian.land_judgement VALUES
    ('illegal',     '违法用地',     1),
    ('legal',       '合法用地',     2),
    ('agri_adjust', '农业结构调整', 3),
    ('unchanged',   '实地未变化',   4);

CREATE TABLE weipian.subtype (
    subtype  text PRIMARY KEY,
    class    text NOT NULL REFERENCES weipian.land_judgement (class),
    name_zh  text NOT NULL,
    column_name text NOT NULL
);
COMMENT ON TABLE weipian.subtype IS '细分类型（合法：本年批准本年建设/往年批准本年建设；违法：未批先建/临时用地超期/未报即用/未备案设施农用地）';
INSERT INTO weipian.subtype VALUES
    ('bnpbj',    'legal',   '本年批准本年建设', 'bnpbj_m2'),
    ('wnpbj',    'legal',   '往年批准本年建设', 'wnpbj_m2'),
    ('wpxj',     'illegal', '未批先建',         'wpxj_m2'),
    ('lsyd_cq',  'illegal', '临时用地超期',     'lsyd_cq_m2'),
    ('wbjy',     'illegal', '未报即用',         'wbjy_m2'),
    ('ssny_wba', 'illegal', '未备案设施农用地', 'ssny_wba_m2');

-- Ellipsoidal area in m² on CGCS2000 (domain.md Decision 11).
CREATE OR REPLACE FUNCTION weipian.area_m2(g geometry) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(ST_Area(ST_Transform(g, 4490)::geography), 0)
$$;

-- Polygonal part of an overlay result, NULL when nothing polygonal is left.
CREATE OR REPLACE FUNCTION weipian.polygonal(g geometry) RETURNS geometry
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN m IS NULL OR ST_IsEmpty(m) THEN NULL ELSE m END
    FROM (SELECT ST_Multi(ST_CollectionExtract(g, 3)) AS m) s
$$;

-- a ∩ b; NULL when either is NULL or nothing polygonal remains.
CREATE OR REPLACE FUNCTION weipian.inter(a geometry, b geometry) RETURNS geometry
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL OR b IS NULL THEN NULL
                ELSE weipian.polygonal(ST_Intersection(a, b)) END
$$;

-- a − b; a itself when b is NULL.
CREATE OR REPLACE FUNCTION weipian.diff(a geometry, b geometry) RETURNS geometry
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL THEN NULL
                WHEN b IS NULL THEN a
                ELSE weipian.polygonal(ST_Difference(a, b)) END
$$;
