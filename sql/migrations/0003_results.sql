-- 0003 results: pieces, per-polygon judgement, township statistics.
--
-- etldoc: change_polygon, landuse, farmland, approval, plan_zone, township, field_check -> change_piece
-- etldoc: change_piece -> change_result
-- etldoc: change_result, change_piece, township -> township_stat

CREATE TABLE weipian.change_piece (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    county_code       text NOT NULL,
    batch             text NOT NULL,
    change_id         bigint NOT NULL,
    jcbh              text NOT NULL,
    class             text NOT NULL REFERENCES weipian.land_judgement (class),
    subtype           text REFERENCES weipian.subtype (subtype),
    xzqdm             text,
    area_m2           double precision NOT NULL,
    cultivated_m2     double precision NOT NULL,
    farmland_m2       double precision NOT NULL,
    outside_ubg_m2    double precision,
    in_eco_m2         double precision,
    geom              geometry(MultiPolygon) NOT NULL
);
CREATE INDEX ON weipian.change_piece (county_code, batch);
CREATE INDEX ON weipian.change_piece USING gist (geom);
COMMENT ON TABLE weipian.change_piece IS '图斑分块：每个监测图斑按认定类型 × 乡镇 × 细分类型切分，面积相加等于图斑面积';
COMMENT ON COLUMN weipian.change_piece.class IS '最终认定类型（外业核查优先）';
COMMENT ON COLUMN weipian.change_piece.subtype IS '细分类型（见 weipian.subtype）';
COMMENT ON COLUMN weipian.change_piece.xzqdm IS '分块所在乡镇代码；空值表示不在任何乡镇界内';
COMMENT ON COLUMN weipian.change_piece.area_m2 IS '椭球面积（平方米，CGCS2000）';
COMMENT ON COLUMN weipian.change_piece.cultivated_m2 IS '其中耕地面积（平方米，扣除田坎）';
COMMENT ON COLUMN weipian.change_piece.farmland_m2 IS '其中永久基本农田面积（平方米）';
COMMENT ON COLUMN weipian.change_piece.outside_ubg_m2 IS '城镇开发边界外面积（平方米；无规划图层时为空）';
COMMENT ON COLUMN weipian.change_piece.in_eco_m2 IS '生态保护红线内面积（平方米；无规划图层时为空）';

CREATE TABLE weipian.change_result (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    county_code            text NOT NULL,
    batch                  text NOT NULL,
    change_id              bigint NOT NULL,
    jcbh                   text NOT NULL,
    xzqdm                  text,
    xzqmc                  text,
    class                  text NOT NULL,
    auto_class             text NOT NULL,
    area_m2                double precision NOT NULL,
    legal_m2               double precision NOT NULL,
    unchanged_m2           double precision NOT NULL,
    agri_m2                double precision NOT NULL,
    illegal_m2             double precision NOT NULL,
    cultivated_m2          double precision NOT NULL,
    farmland_m2            double precision NOT NULL,
    legal_cultivated_m2    double precision NOT NULL,
    illegal_cultivated_m2  double precision NOT NULL,
    illegal_farmland_m2    double precision NOT NULL,
    bnpbj_m2               double precision NOT NULL,
    wnpbj_m2               double precision NOT NULL,
    wpxj_m2                double precision NOT NULL,
    lsyd_cq_m2             double precision NOT NULL,
    wbjy_m2                double precision NOT NULL,
    ssny_wba_m2            double precision NOT NULL,
    illegal_outside_ubg_m2 double precision,
    illegal_in_eco_m2      double precision,
    bhlx                   text,
    hsx                    date,
    sfbh                   text,
    pdlx                   text,
    geom                   geometry(MultiPolygon) NOT NULL,
    UNIQUE (county_code, batch, jcbh)
);
CREATE INDEX ON weipian.change_result USING gist (geom);
COMMENT ON TABLE weipian.change_result IS '监测图斑认定结果（每个图斑一行）';
COMMENT ON COLUMN weipian.change_result.jcbh IS '监测编号';
COMMENT ON COLUMN weipian.change_result.xzqdm IS '所属乡镇代码（面积占比最大的乡镇）';
COMMENT ON COLUMN weipian.change_result.xzqmc IS '所属乡镇名称';
COMMENT ON COLUMN weipian.change_result.class IS '最终认定类型（legal 合法用地 / unchanged 实地未变化 / agri_adjust 农业结构调整 / illegal 违法用地）';
COMMENT ON COLUMN weipian.change_result.auto_class IS '内业判定类型（未经外业核查修正）';
COMMENT ON COLUMN weipian.change_result.area_m2 IS '图斑椭球面积（平方米）';
COMMENT ON COLUMN weipian.change_result.legal_m2 IS '合法用地面积（平方米）';
COMMENT ON COLUMN weipian.change_result.unchanged_m2 IS '实地未变化面积（平方米）';
COMMENT ON COLUMN weipian.change_result.agri_m2 IS '农业结构调整面积（平方米）';
COMMENT ON COLUMN weipian.change_result.illegal_m2 IS '违法用地面积（平方米）';
COMMENT ON COLUMN weipian.change_result.cultivated_m2 IS '耕地面积（平方米，扣除田坎）';
COMMENT ON COLUMN weipian.change_result.farmland_m2 IS '永久基本农田面积（平方米）';
COMMENT ON COLUMN weipian.change_result.legal_cultivated_m2 IS '合法用地中耕地面积（平方米）';
COMMENT ON COLUMN weipian.change_result.illegal_cultivated_m2 IS '违法用地中耕地面积（平方米）';
COMMENT ON COLUMN weipian.change_result.illegal_farmland_m2 IS '违法用地中永久基本农田面积（平方米）';
COMMENT ON COLUMN weipian.change_result.bnpbj_m2 IS '本年批准本年建设面积（平方米）';
COMMENT ON COLUMN weipian.change_result.wnpbj_m2 IS '往年批准本年建设面积（平方米）';
COMMENT ON COLUMN weipian.change_result.wpxj_m2 IS '未批先建面积（平方米）';
COMMENT ON COLUMN weipian.change_result.lsyd_cq_m2 IS '临时用地超期面积（平方米）';
COMMENT ON COLUMN weipian.change_result.wbjy_m2 IS '未报即用面积（平方米）';
COMMENT ON COLUMN weipian.change_result.ssny_wba_m2 IS '未备案设施农用地面积（平方米）';
COMMENT ON COLUMN weipian.change_result.illegal_outside_ubg_m2 IS '违法用地中城镇开发边界外面积（平方米；无规划图层时为空）';
COMMENT ON COLUMN weipian.change_result.illegal_in_eco_m2 IS '违法用地中生态保护红线内面积（平方米；无规划图层时为空）';
COMMENT ON COLUMN weipian.change_result.sfbh IS '外业核查：是否变化';
COMMENT ON COLUMN weipian.change_result.pdlx IS '外业核查：认定类型';

CREATE TABLE weipian.township_stat (
    county_code              text NOT NULL,
    selection                text NOT NULL,
    ord                      integer NOT NULL,
    xzqdm                    text NOT NULL,
    xzqmc                    text NOT NULL,
    n_total                  integer NOT NULL,
    n_legal                  integer NOT NULL,
    n_unchanged              integer NOT NULL,
    n_agri                   integer NOT NULL,
    n_illegal                integer NOT NULL,
    n_illegal_cultivated     integer NOT NULL,
    area_mu                  numeric(16, 2) NOT NULL,
    legal_mu                 numeric(16, 2) NOT NULL,
    unchanged_mu             numeric(16, 2) NOT NULL,
    agri_mu                  numeric(16, 2) NOT NULL,
    illegal_mu               numeric(16, 2) NOT NULL,
    illegal_cultivated_mu    numeric(16, 2) NOT NULL,
    illegal_farmland_mu      numeric(16, 2) NOT NULL,
    new_construction_mu      numeric(16, 2) NOT NULL,
    new_cultivated_mu        numeric(16, 2) NOT NULL,
    illegal_cultivated_ratio numeric(8, 4),
    rank                     integer,
    PRIMARY KEY (county_code, selection, xzqdm)
);
COMMENT ON TABLE weipian.township_stat IS '乡镇统计（按批次或年度范围），末行为全县合计';
COMMENT ON COLUMN weipian.township_stat.selection IS '统计范围：批次（如 2022）或年度范围（如 2018—2021）';
COMMENT ON COLUMN weipian.township_stat.n_total IS '图斑总数（宗）';
COMMENT ON COLUMN weipian.township_stat.n_legal IS '合法用地（宗）';
COMMENT ON COLUMN weipian.township_stat.n_unchanged IS '实地未变化（宗）';
COMMENT ON COLUMN weipian.township_stat.n_agri IS '农业结构调整（宗）';
COMMENT ON COLUMN weipian.township_stat.n_illegal IS '违法用地（宗）';
COMMENT ON COLUMN weipian.township_stat.n_illegal_cultivated IS '违法用地涉及耕地（宗）';
COMMENT ON COLUMN weipian.township_stat.area_mu IS '图斑总面积（亩）';
COMMENT ON COLUMN weipian.township_stat.legal_mu IS '合法用地面积（亩）';
COMMENT ON COLUMN weipian.township_stat.unchanged_mu IS '实地未变化面积（亩）';
COMMENT ON COLUMN weipian.township_stat.agri_mu IS '农业结构调整面积（亩）';
COMMENT ON COLUMN weipian.township_stat.illegal_mu IS '违法用地面积（亩）';
COMMENT ON COLUMN weipian.township_stat.illegal_cultivated_mu IS '违法占用耕地面积（亩）';
COMMENT ON COLUMN weipian.township_stat.illegal_farmland_mu IS '违法占用永久基本农田面积（亩）';
COMMENT ON COLUMN weipian.township_stat.new_construction_mu IS '新增建设用地面积（亩）= 合法 + 违法';
COMMENT ON COLUMN weipian.township_stat.new_cultivated_mu IS '新增建设用地占用耕地面积（亩）';
COMMENT ON COLUMN weipian.township_stat.illegal_cultivated_ratio IS '违法占用耕地比例（0–1，≥ 0.15 为问责线）';
COMMENT ON COLUMN weipian.township_stat.rank IS '排名（违法占用耕地面积降序，再按违法用地面积降序）；全县合计行为空';
