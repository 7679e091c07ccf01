-- 0005 run records and incremental state, for the unattended nightly job.
-- A run row is written when a run starts (committed at once) and completed when
-- it ends; a row left 'running' whose county lock is free was killed.
-- batch_state records the digest of every input a batch's classification
-- depended on, so a night with nothing new reclassifies nothing.

CREATE TABLE weipian.run (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    county_code   text NOT NULL,
    command       text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at      timestamptz,
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
    exit_code     integer,
    error         text,
    stages        jsonb NOT NULL DEFAULT '[]',
    inputs        jsonb NOT NULL DEFAULT '[]',
    outputs       jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX ON weipian.run (county_code, started_at DESC);
COMMENT ON TABLE weipian.run IS '运行记录：每次运行一行（开始、结束、各阶段耗时与行数、输入文件校验值、结果与错误）';
COMMENT ON COLUMN weipian.run.command IS '运行的命令与参数（不含数据库凭据）';
COMMENT ON COLUMN weipian.run.status IS 'running 运行中（锁已释放则为中断）/ ok 成功 / failed 失败';
COMMENT ON COLUMN weipian.run.exit_code IS '退出码：0 成功，1 内部错误，2 输入数据有误，3 数据库不可用，4 该县已有运行，5 无法写入文件';
COMMENT ON COLUMN weipian.run.stages IS '各阶段：名称、耗时（秒）、输入行数、输出行数';
COMMENT ON COLUMN weipian.run.inputs IS '输入文件：类型、路径、批次、校验值、是否重新入库';
COMMENT ON COLUMN weipian.run.outputs IS '写出的文件夹及是否重写';

CREATE TABLE weipian.batch_state (
    county_code    text NOT NULL,
    batch          text NOT NULL,
    inputs_digest  text NOT NULL,
    classified_at  timestamptz NOT NULL DEFAULT now(),
    run_id         bigint,
    PRIMARY KEY (county_code, batch)
);
COMMENT ON TABLE weipian.batch_state IS '批次判定状态：判定所依据的全部输入（图层校验值、规则代码、参数）的摘要';
