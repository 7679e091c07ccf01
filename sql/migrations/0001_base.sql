-- 0001 base schema: counties, loaded sources, input layers, quarantine.
--
-- Every table carries county_code and every join between tables includes it, so
-- several counties share one database and tables can later be partitioned or
-- distributed by county. Geometry columns are geometry(MultiPolygon) without a
-- fixed SRID: each county keeps its own working CRS (weipian.county.srid); the
-- per-county views made by the pipeline carry the typmod QGIS wants.

CREATE EXTENSION IF NOT EXISTS postgis;
CREATE SCHEMA IF NOT EXISTS weipian;

CREATE TABLE weipian.county (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    srid        integer NOT NULL,
    toml_path   text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE weipian.county IS '县（项目）：代码、名称、工作坐标系';
COMMENT ON COLUMN weipian.county.code IS '县级行政区划代码';
COMMENT ON COLUMN weipian.county.name IS '县名称';
COMMENT ON COLUMN weipian.county.srid IS '工作坐标系 EPSG 代码（投影坐标，米）';

-- etldoc: county.toml layers -> source
CREATE TABLE weipian.source (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    county_code    text NOT NULL REFERENCES weipian.county (code),
    kind           text NOT NULL,
    path           text NOT NULL,
    layer          text NOT NULL DEFAULT '',
    batch          text NOT NULL DEFAULT '',
    layer_index    integer NOT NULL,
    checksum       text NOT NULL,
    n_read         integer NOT NULL DEFAULT 0,
    n_loaded       integer NOT NULL DEFAULT 0,
    n_repaired     integer NOT NULL DEFAULT 0,
    n_quarantined  integer NOT NULL DEFAULT 0,
    loaded_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (county_code, kind, path, layer, batch)
);
COMMENT ON TABLE weipian.source IS '已入库的数据源（每个图层文件一行）；校验值不变则不重复入库';
COMMENT ON COLUMN weipian.source.kind IS '图层类型：township/landuse/farmland/approval/change/plan/field_check';
COMMENT ON COLUMN weipian.source.checksum IS '文件内容与映射配置的 SHA-256';
COMMENT ON COLUMN weipian.source.n_read IS '读取要素数';
COMMENT ON COLUMN weipian.source.n_loaded IS '原样入库的要素数（读取 = 原样入库 + 修复后入库 + 隔离）';
COMMENT ON COLUMN weipian.source.n_repaired IS '几何修复后入库的要素数';
COMMENT ON COLUMN weipian.source.n_quarantined IS '隔离（未入库）的要素数';

CREATE TABLE weipian.quarantine (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    county_code    text NOT NULL,
    source_id      bigint NOT NULL REFERENCES weipian.source (id) ON DELETE CASCADE,
    feature_index  integer NOT NULL,
    reason         text NOT NULL,
    attributes     jsonb
);
CREATE INDEX ON weipian.quarantine (county_code, source_id);
COMMENT ON TABLE weipian.quarantine IS '隔离要素：无法使用的要素及原因，来源文件与要素序号';
COMMENT ON COLUMN weipian.quarantine.feature_index IS '要素在源文件中的序号（从 0 开始）';
COMMENT ON COLUMN weipian.quarantine.reason IS '隔离原因';

CREATE TABLE weipian.township (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    county_code    text NOT NULL,
    source_id      bigint NOT NULL REFERENCES weipian.source (id) ON DELETE CASCADE,
    feature_index  integer NOT NULL,
    xzqdm          text NOT NULL,
    xzqmc          text NOT NULL,
    geom           geometry(MultiPolygon) NOT NULL
);
CREATE INDEX ON weipian.township USING gist (geom);
CREATE INDEX ON weipian.township (county_code);
COMMENT ON TABLE weipian.township IS '乡镇界（XZQ）';
COMMENT ON COLUMN weipian.township.xzqdm IS '乡镇代码';
COMMENT ON COLUMN weipian.township.xzqmc IS '乡镇名称';

CREATE TABLE weipian.landuse (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    county_code    text NOT NULL,
    source_id      bigint NOT NULL REFERENCES weipian.source (id) ON DELETE CASCADE,
    feature_index  integer NOT NULL,
    bsm            text,
    dlbm           text,
    dlbm_source    text,
    dlmc           text,
    zldwdm         text,
    tbmj           double precision,
    kcxs           double precision NOT NULL DEFAULT 0,
    kcmj           double precision,
    tbdlmj         double precision,
    land_group     text NOT NULL,
    is_cultivated  boolean NOT NULL,
    geom           geometry(MultiPolygon) NOT NULL
);
CREATE INDEX ON weipian.landuse USING gist (geom);
CREATE INDEX ON weipian.landuse (county_code);
COMMENT ON TABLE weipian.landuse IS '地类图斑（DLTB），三调/年度变更调查';
COMMENT ON COLUMN weipian.landuse.dlbm IS '地类编码（规范化：去空格、大写、三位数字补零）';
COMMENT ON COLUMN weipian.landuse.dlbm_source IS '源数据中的地类编码原值';
COMMENT ON COLUMN weipian.landuse.kcxs IS '扣除系数（0–1；源数据大于 1 时按百分比换算）';
COMMENT ON COLUMN weipian.landuse.land_group IS '地类大类：construction 建设用地 / agricultural 农用地 / unused 未利用地';
COMMENT ON COLUMN weipian.landuse.is_cultivated IS '是否耕地（0101/0102/0103）';

CREATE TABLE weipian.farmland (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    county_code    text NOT NULL,
    source_id      bigint NOT NULL REFERENCES weipian.source (id) ON DELETE CASCADE,
    feature_index  integer NOT NULL,
    bsm            text,
    dlbm           text,
    geom           geometry(MultiPolygon) NOT NULL
);
CREATE INDEX ON weipian.farmland USING gist (geom);
CREATE INDEX ON weipian.farmland (county_code);
COMMENT ON TABLE weipian.farmland IS '永久基本农田（YJJBNTTB）';

CREATE TABLE weipian.approval (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    county_code    text NOT NULL,
    source_id      bigint NOT NULL REFERENCES weipian.source (id) ON DELETE CASCADE,
    feature_index  integer NOT NULL,
    pzwh           text,
    pzrq           date NOT NULL,
    pzlx           text NOT NULL,
    yxqz           date,
    xmmc           text,
    geom           geometry(MultiPolygon) NOT NULL
);
CREATE INDEX ON weipian.approval USING gist (geom);
CREATE INDEX ON weipian.approval (county_code);
COMMENT ON TABLE weipian.approval IS '用地审批范围（农用地转用、征收、供地、临时用地、设施农用地备案、宅基地审批）';
COMMENT ON COLUMN weipian.approval.pzwh IS '批准文号';
COMMENT ON COLUMN weipian.approval.pzrq IS '批准日期';
COMMENT ON COLUMN weipian.approval.pzlx IS '批准类型';
COMMENT ON COLUMN weipian.approval.yxqz IS '有效期至（临时用地）';
COMMENT ON COLUMN weipian.approval.xmmc IS '项目名称';

CREATE TABLE weipian.change_polygon (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    county_code    text NOT NULL,
    source_id      bigint NOT NULL REFERENCES weipian.source (id) ON DELETE CASCADE,
    feature_index  integer NOT NULL,
    batch          text NOT NULL,
    jcbh           text NOT NULL,
    xzqdm_source   text,
    qsx            date,
    hsx            date NOT NULL,
    jcmj           double precision,
    bhlx           text NOT NULL,
    geom           geometry(MultiPolygon) NOT NULL,
    UNIQUE (county_code, batch, jcbh)
);
CREATE INDEX ON weipian.change_polygon USING gist (geom);
COMMENT ON TABLE weipian.change_polygon IS '监测图斑（JCTB），按批次';
COMMENT ON COLUMN weipian.change_polygon.batch IS '监测批次（年度或季度，如 2022、2025Q2）';
COMMENT ON COLUMN weipian.change_polygon.jcbh IS '监测编号';
COMMENT ON COLUMN weipian.change_polygon.xzqdm_source IS '源数据中的行政区代码（仅保留，不参与计算）';
COMMENT ON COLUMN weipian.change_polygon.qsx IS '前时相';
COMMENT ON COLUMN weipian.change_polygon.hsx IS '后时相';
COMMENT ON COLUMN weipian.change_polygon.jcmj IS '源数据中的监测面积（仅保留，不参与计算）';
COMMENT ON COLUMN weipian.change_polygon.bhlx IS '变化类型';

CREATE TABLE weipian.plan_zone (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    county_code    text NOT NULL,
    source_id      bigint NOT NULL REFERENCES weipian.source (id) ON DELETE CASCADE,
    feature_index  integer NOT NULL,
    gklx           text NOT NULL,
    geom           geometry(MultiPolygon) NOT NULL
);
CREATE INDEX ON weipian.plan_zone USING gist (geom);
COMMENT ON TABLE weipian.plan_zone IS '规划管控范围（城镇开发边界、生态保护红线）';
COMMENT ON COLUMN weipian.plan_zone.gklx IS '管控类型';

CREATE TABLE weipian.field_check (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    county_code    text NOT NULL,
    source_id      bigint NOT NULL REFERENCES weipian.source (id) ON DELETE CASCADE,
    feature_index  integer NOT NULL,
    layer_index    integer NOT NULL,
    batch          text,
    jcbh           text NOT NULL,
    sfbh           text CHECK (sfbh IN ('是', '否')),
    pdlx           text CHECK (pdlx IN ('legal', 'unchanged', 'agri_adjust', 'illegal')),
    hcr            text,
    hcrq           date,
    bz             text
);
CREATE INDEX ON weipian.field_check (county_code, jcbh);
COMMENT ON TABLE weipian.field_check IS '外业核查结果（按监测编号）；batch 为空时适用于所有批次';
COMMENT ON COLUMN weipian.field_check.sfbh IS '是否变化（是/否）';
COMMENT ON COLUMN weipian.field_check.pdlx IS '核查认定类型（legal 合法用地 / unchanged 实地未变化 / agri_adjust 农业结构调整 / illegal 违法用地）';
COMMENT ON COLUMN weipian.field_check.hcr IS '核查人';
COMMENT ON COLUMN weipian.field_check.hcrq IS '核查日期';
COMMENT ON COLUMN weipian.field_check.bz IS '备注';
COMMENT ON COLUMN weipian.field_check.layer_index IS '图层在 county.toml 中的顺序；后者覆盖前者';
