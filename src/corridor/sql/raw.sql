-- Landing tables of the corridor warehouse: one per feed entity, plus the
-- operational ledger and quarantine. Idempotent: safe to run on every start.
--
-- Every raw table carries the same lineage columns:
--   ledger_id    the ops.load_ledger row of the file the row came from
--   source_row   the row's number in its file (xlsx: the sheet's row number;
--                csv: the record's line, header = 1; jsonl: the line)
--   file_version the file's version (district: N of _vN; other feeds: 1)
-- The column names are a contract with the parsers (src/corridor/feeds) and
-- with dbt's sources (dbt_project/models/staging/*/_*__sources.yml).

create schema if not exists ops;
create schema if not exists raw;

create table if not exists ops.load_ledger (
    ledger_id        bigserial primary key,
    feed             text not null,
    file_name        text not null,
    sha256           text not null,
    bytes            bigint not null,
    rows_received    integer not null default 0,
    rows_loaded      integer not null default 0,
    rows_quarantined integer not null default 0,
    status           text not null check (status in ('loaded', 'rejected')),
    started_at       timestamptz not null,
    finished_at      timestamptz not null,
    message          text,
    constraint ledger_rows_reconcile
        check (status = 'rejected' or rows_received = rows_loaded + rows_quarantined)
);
-- A file name loads at most once per feed (identical bytes under another
-- name get a 'loaded' row with nothing loaded, naming the original; but a
-- later version of the same district area-month is loaded: a restatement).
create unique index if not exists load_ledger_loaded_file
    on ops.load_ledger (feed, file_name) where status = 'loaded';
create index if not exists load_ledger_feed_sha256 on ops.load_ledger (feed, sha256);
-- The file's modification time when it was read: a file still under the same
-- name, size and mtime as a loaded one is not re-read (nor re-hashed) by later runs.
-- (Altered only when missing: ALTER TABLE would lock the ledger on every start.)
do $$
begin
    if not exists (select 1 from information_schema.columns
                   where table_schema = 'ops' and table_name = 'load_ledger' and column_name = 'mtime') then
        alter table ops.load_ledger add column mtime timestamptz;
    end if;
end
$$;

create table if not exists ops.quarantine (
    quarantine_id  bigserial primary key,
    ledger_id      bigint not null references ops.load_ledger (ledger_id),
    feed           text not null,
    file_name      text not null,
    sheet          text,
    source_row     integer not null,
    rule_code      text not null,
    message        text not null,
    record         jsonb not null,
    quarantined_at timestamptz not null default now()
);
create index if not exists quarantine_ledger on ops.quarantine (ledger_id);
create index if not exists quarantine_rule on ops.quarantine (feed, rule_code);

-- 1. District monthly returns (片区月报): one workbook per area per month.

-- One row per loaded workbook (from its 封面 sheet). 填报人 and 联系电话 are
-- personal data and are never stored.
create table if not exists raw.district_returns (
    area_code        text not null,
    report_month     date not null,          -- first day of the report month
    file_version     integer not null,
    reporting_unit   text,                   -- 填报单位
    report_period    text,                   -- 报告期, as printed
    submitted_date   date,                   -- 报送日期
    ledger_id        bigint not null,
    source_row       integer not null
);

create table if not exists raw.district_platforms (
    area_code            text not null,
    report_month         date not null,
    file_version         integer not null,
    platform_id          text not null,      -- 平台编号
    platform_name        text,               -- 平台名称
    platform_category    text,               -- 平台类别 (required for 新增; a 撤销 or 更新 may leave it blank)
    platform_level       text,               -- 级别
    recognised_date      date,               -- 认定日期 (required for 新增)
    host_name            text,               -- 依托单位
    host_uscc            text,               -- 依托单位统一社会信用代码 (validated)
    change_type          text not null,      -- 变动类型: 新增 / 撤销 / 更新
    incubation_area_m2   numeric,            -- 孵化面积（平方米）
    ledger_id            bigint not null,
    source_row           integer not null
);

-- (A warehouse made before 2026-12-07 held 平台类别 not null: dropped when still set.)
do $$
begin
    if exists (select 1 from pg_attribute where attrelid = 'raw.district_platforms'::regclass
               and attname = 'platform_category' and attnotnull) then
        alter table raw.district_platforms alter column platform_category drop not null;
    end if;
end
$$;

create table if not exists raw.district_certifications (
    area_code            text not null,
    report_month         date not null,
    file_version         integer not null,
    uscc                 text not null,      -- 统一社会信用代码 (validated)
    enterprise_name      text,               -- 企业名称
    certification_type   text not null,      -- 认定类别
    certificate_no       text not null,      -- 证书编号
    granted_date         date,               -- 认定日期 (required for 新增)
    valid_until          date,               -- 有效期至; null = open-ended
    change_type          text not null,      -- 新增 / 撤销
    ledger_id            bigint not null,
    source_row           integer not null
);

create table if not exists raw.district_projects (
    area_code                      text not null,
    report_month                   date not null,
    file_version                   integer not null,
    project_id                     text not null,   -- 项目编号
    project_name                   text,            -- 项目名称
    project_category               text not null,   -- 项目类别
    block_name                     text,            -- 所属区块
    start_date                     date,            -- 开始日期
    planned_completion_date        date,            -- 计划完成日期
    project_status                 text not null,   -- 状态
    cumulative_investment_10k_yuan numeric,         -- 累计完成投资（万元）
    progress_pct                   numeric,         -- 形象进度（%）
    ledger_id                      bigint not null,
    source_row                     integer not null
);

-- 2. Technology contract registrations (技术合同登记), daily export.
create table if not exists raw.techmarket_contracts (
    export_date              date not null,   -- from the file name
    file_version             integer not null,
    registration_no          text not null,   -- 合同登记号 (16 digits)
    registration_date        date not null,   -- 登记日期
    contract_title           text,            -- 合同名称
    contract_type            text not null,   -- 合同类型
    tech_field               text,            -- 技术领域
    seller_name              text,
    seller_uscc              text not null,
    seller_area_code         text not null,
    buyer_name               text,
    buyer_uscc               text,            -- validated when present
    buyer_location           text,
    contract_value_10k_yuan  numeric not null, -- 合同成交额（万元）
    tech_value_10k_yuan      numeric not null, -- 技术交易额（万元）
    registration_status      text not null,   -- 有效 / 变更 / 撤销
    row_hash                 text not null,   -- md5 of the normalised record, for exact-duplicate detection
    ledger_id                bigint not null,
    source_row               integer not null
);
create index if not exists techmarket_contracts_regno
    on raw.techmarket_contracts (registration_no);
-- The loader's cross-file duplicate check reads one file's rows (and moves its duplicates).
create index if not exists techmarket_contracts_ledger
    on raw.techmarket_contracts (ledger_id);

-- 3. Bank pledge-financing loans (知识产权质押等融资), monthly per bank.
create table if not exists raw.bank_loans (
    bank_code               text not null,    -- from the file name
    report_month            date not null,    -- 报告期, first day of month
    file_version            integer not null,
    loan_id                 text not null,    -- 贷款编号
    borrower_name           text,
    borrower_uscc           text not null,
    area_code               text not null,    -- 所属片区
    collateral_type         text not null,    -- 质押物类型
    pledge_registration_no  text,             -- 质押登记号
    ip_numbers              text[] not null,  -- 知识产权编号, split on ; / ；
    loan_amount_yuan        numeric not null, -- 贷款金额（元）
    disbursed_date          date not null,    -- 放款日期
    due_date                date,             -- 到期日期
    annual_rate_pct         numeric,          -- 年利率（%）
    loan_status             text not null,    -- 正常 / 结清 / 逾期 / 核销
    ledger_id               bigint not null,
    source_row              integer not null
);

-- 4. Talent intake (高层次人才引育), monthly JSON Lines. No id_number, no name:
-- the person is the keyed pseudonym person_key = HMAC-SHA256(CORRIDOR_PII_KEY, id).
create table if not exists raw.hr_talents (
    file_month       date not null,           -- from the file name
    file_version     integer not null,
    record_id        text not null,
    person_key       text not null,
    category         text not null,           -- A..E
    title            text,
    employer_name    text,
    employer_uscc    text,
    area_code        text not null,
    intake_date      date not null,
    intake_type      text not null,           -- 引进 / 培育
    is_overseas      boolean,
    team_id          text,
    action           text not null,           -- new / update / withdraw
    ledger_id        bigint not null,
    source_row       integer not null
);

-- The quality gate validates the rows of the files loaded since its last pass
-- (corridor.quality: `ledger_id = any(<files not validated yet>)`). Rows are
-- appended file by file, so ledger_id grows with the heap: a BRIN index (a few
-- pages, next to nothing per COPY) finds a month's files in the last blocks
-- instead of a scan of the table per expectation. (techmarket_contracts has its
-- btree on ledger_id above.)
create index if not exists district_returns_ledger_brin on raw.district_returns using brin (ledger_id);
create index if not exists district_platforms_ledger_brin on raw.district_platforms using brin (ledger_id);
create index if not exists district_certifications_ledger_brin
    on raw.district_certifications using brin (ledger_id);
create index if not exists district_projects_ledger_brin on raw.district_projects using brin (ledger_id);
create index if not exists bank_loans_ledger_brin on raw.bank_loans using brin (ledger_id);
create index if not exists hr_talents_ledger_brin on raw.hr_talents using brin (ledger_id);

-- BI logins (bi_reader, the area roles: dbt_project/macros/bi_access.sql) read, never write. PostgreSQL 15
-- made CREATE on the schema public its owner's alone; a server of PostgreSQL 14 or older, or a database
-- upgraded from one (pg_upgrade keeps the schema's privileges), still grants it to PUBLIC, i.e. to every role:
-- taken back (the warehouse keeps nothing in public). A user that does not own the schema cannot: REVOKE then
-- only warns, and corridor.db.ensure_schema logs what an administrator has to run.
do $$
begin
    if exists (select from pg_namespace as n, aclexplode(n.nspacl) as a
               where n.nspname = 'public' and a.grantee = 0 and a.privilege_type = 'CREATE') then
        revoke create on schema public from public;
    end if;
end
$$;
