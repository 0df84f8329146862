{{
    config(
        materialized='incremental',
        unique_key='uscc',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['max_ledger_id']}],
        pre_hook="{% if is_incremental() %}delete from {{ this }} where uscc in ("
            ~ "{{ enterprises_restated_since(this) }}){% endif %}",
    )
}}

-- Index on max_ledger_id: an incremental run reads its watermark,
-- max(max_ledger_id), from the index instead of scanning the table.

-- depends_on: {{ ref('stg_district__certifications') }}
-- depends_on: {{ ref('stg_district__platforms') }}
-- depends_on: {{ ref('stg_district__returns') }}
-- (the incremental branch reads the raw district rows to find the restated enterprises)

-- One row per enterprise (统一社会信用代码) seen in any feed, in any role:
-- certified enterprise, platform host, contract seller or buyer, pledge
-- borrower, talent employer. Name = the latest name reported; area = the
-- latest corridor area reported (buyers carry no area; a buyer outside the
-- corridor has none). District rows count in their version that counts.
--
-- Incremental (issue 11). The watermark is the highest max_ledger_id in the
-- table; the new observations are those of records loaded after it. Every
-- column is a max, a min or an "or" over an enterprise's observations, so a
-- run merges each named enterprise's new observations into its row
-- (delete+insert on uscc) without reading its old observations, except:
-- - the enterprises named in any version of a restated district area-month
--   (macros/enterprises_restated_since.sql: more than one workbook, the
--   latest loaded after the watermark): a restatement can drop their rows of
--   the earlier version, so the pre-hook deletes them and the run recomputes
--   them from all their observations (an enterprise left with none stays
--   deleted, as in a full refresh);
-- - an enterprise whose latest new name (or area) was observed on or before
--   its row's last_seen_date: the old name's date is not in the row, so
--   which name is the latest is not known from the row; recomputed from all
--   its observations too.
-- The whole observation set is read only when some enterprise must be
-- recomputed (a restatement, a record dated back); a month of new records
-- reads the new records and the rows they name. If the pre-hook's deletion
-- lowers the watermark, the run merges some observations again: a max, a min
-- and an "or" give the same row (or the date test sends it to the recompute).
-- The watermark spans the feeds, whose loaders run side by side: it holds
-- because no file is committed while a build runs (corridor.db.LEDGER_LOCK),
-- so every ledger id below one a build read is final. Raw rows never deleted
-- (else --full-refresh), as for the incremental facts.
--
-- The latest name (area): the greatest 'YYYY-MM-DD' || role_rank || name in
-- byte order (collate "C"); the date (dates run from year 1 to 9999: ten
-- characters) and the rank (one character) have fixed widths, so this is the
-- order of (date, rank, name), and the name starts at character 12. (An array
-- of the three, as before, ordered the same; its aggregate states made the
-- hash of a province build spill 28 % more, issue 11.)

{%- set aggregates -%}
        uscc,
        max((to_char(observed_date, 'YYYY-MM-DD') || role_rank || enterprise_name) collate "C")
        filter (where enterprise_name is not null) as latest_name,
        max((to_char(observed_date, 'YYYY-MM-DD') || role_rank || area_code) collate "C")
        filter (where area_code is not null) as latest_area,
        min(observed_date) as first_seen_date,
        max(observed_date) as last_seen_date,
        bool_or(enterprise_role = 'certified') as has_certification,
        bool_or(enterprise_role = 'platform_host') as is_platform_host,
        bool_or(enterprise_role = 'tech_seller') as is_tech_seller,
        bool_or(enterprise_role = 'tech_buyer') as is_tech_buyer,
        bool_or(enterprise_role = 'pledge_borrower') as is_pledge_borrower,
        bool_or(enterprise_role = 'talent_employer') as is_talent_employer,
        max(ledger_id) as max_ledger_id
{%- endset %}

{%- set columns -%}
        uscc,
        enterprise_name,
        area_code,
        is_in_corridor,
        has_certification,
        is_platform_host,
        is_tech_seller,
        is_tech_buyer,
        is_pledge_borrower,
        is_talent_employer,
        first_seen_date,
        last_seen_date,
        max_ledger_id
{%- endset %}

with

certifications as (
    select * from {{ ref('int_district_certifications_versioned') }}
),

platforms as (
    select * from {{ ref('int_district_platforms_versioned') }}
),

contracts as not materialized (
    select * from {{ ref('stg_techmarket__contracts') }}
),

loans as (
    select * from {{ ref('stg_bank__loans') }}
),

talents as (
    select * from {{ ref('stg_hr__talents') }}
),

observations as not materialized (
    select
        uscc,
        enterprise_name,
        area_code,
        report_month_end_date as observed_date,
        'certified' as enterprise_role,
        '6' as role_rank,
        ledger_id
    from certifications
    union all
    select
        host_uscc as uscc,
        host_name as enterprise_name,
        area_code,
        report_month_end_date as observed_date,
        'platform_host' as enterprise_role,
        '5' as role_rank,
        ledger_id
    from platforms
    where host_uscc is not null
    union all
    select
        seller_uscc as uscc,
        seller_name as enterprise_name,
        seller_area_code as area_code,
        export_date as observed_date,
        'tech_seller' as enterprise_role,
        '1' as role_rank,
        ledger_id
    from contracts
    union all
    select
        buyer_uscc as uscc,
        buyer_name as enterprise_name,
        null::text as area_code,
        export_date as observed_date,
        'tech_buyer' as enterprise_role,
        '2' as role_rank,
        ledger_id
    from contracts
    where buyer_uscc is not null
    union all
    select
        borrower_uscc as uscc,
        borrower_name as enterprise_name,
        area_code,
        {{ month_end('report_month') }} as observed_date,
        'pledge_borrower' as enterprise_role,
        '4' as role_rank,
        ledger_id
    from loans
    union all
    select
        employer_uscc as uscc,
        employer_name as enterprise_name,
        area_code,
        file_month_end_date as observed_date,
        'talent_employer' as enterprise_role,
        '3' as role_rank,
        ledger_id
    from talents
    where employer_uscc is not null
),

{% if is_incremental() %}
{%- set watermark = "(select coalesce(max(seen.max_ledger_id), 0) from " ~ this ~ " as seen)" %}
restated_enterprises as (
    {{ enterprises_restated_since(this) }}
),

-- the records loaded after the watermark: each branch of observations reads
-- its new rows only (the raw tables' ledger_id indexes)
new_enterprises as (
    select
        {{ aggregates }},
        max(observed_date) filter (where enterprise_name is not null) as latest_name_date,
        max(observed_date) filter (where area_code is not null) as latest_area_date
    from observations
    where ledger_id > {{ watermark }}
    group by uscc
),

merged as (
    select
        new_enterprises.uscc,
        coalesce(substr(new_enterprises.latest_name, 12), old.enterprise_name) as enterprise_name,
        coalesce(substr(new_enterprises.latest_area, 12), old.area_code) as area_code,
        new_enterprises.latest_area is not null or coalesce(old.is_in_corridor, false) as is_in_corridor,
        new_enterprises.has_certification or coalesce(old.has_certification, false) as has_certification,
        new_enterprises.is_platform_host or coalesce(old.is_platform_host, false) as is_platform_host,
        new_enterprises.is_tech_seller or coalesce(old.is_tech_seller, false) as is_tech_seller,
        new_enterprises.is_tech_buyer or coalesce(old.is_tech_buyer, false) as is_tech_buyer,
        new_enterprises.is_pledge_borrower or coalesce(old.is_pledge_borrower, false) as is_pledge_borrower,
        new_enterprises.is_talent_employer or coalesce(old.is_talent_employer, false) as is_talent_employer,
        least(new_enterprises.first_seen_date, old.first_seen_date) as first_seen_date,
        greatest(new_enterprises.last_seen_date, old.last_seen_date) as last_seen_date,
        greatest(new_enterprises.max_ledger_id, old.max_ledger_id) as max_ledger_id,
        -- the row cannot tell which name (or area) is the latest: recompute
        coalesce(new_enterprises.latest_name_date <= old.last_seen_date, false)
        or coalesce(new_enterprises.latest_area_date <= old.last_seen_date, false) as needs_recompute
    from new_enterprises
    left join {{ this }} as old on new_enterprises.uscc = old.uscc
    where not exists (
        select from restated_enterprises where restated_enterprises.uscc = new_enterprises.uscc
    )
),

recomputed_enterprises as materialized (
    select restated_enterprises.uscc from restated_enterprises
    union
    select merged.uscc from merged where merged.needs_recompute
),

{% endif %}

enterprises as (
    select
        {{ aggregates }}
    from observations
    {%- if is_incremental() %}
        where observations.uscc in (select recomputed_enterprises.uscc from recomputed_enterprises)
    {%- endif %}
    group by uscc
),

final as (
    select
        uscc,
        substr(latest_name, 12) as enterprise_name,
        substr(latest_area, 12) as area_code,
        latest_area is not null as is_in_corridor,
        has_certification,
        is_platform_host,
        is_tech_seller,
        is_tech_buyer,
        is_pledge_borrower,
        is_talent_employer,
        first_seen_date,
        last_seen_date,
        max_ledger_id
    from enterprises
    {%- if is_incremental() %}
    union all
    select
        {{ columns }}
    from merged
    where not merged.needs_recompute
    {%- endif %}
)

-- In key order: the contract's primary key (uscc) is a b-tree filled as the
-- rows are inserted; rows in key order append to it instead of splitting pages
-- all over (national, 7.6 M enterprises: 74-81 s instead of 99-101 s; province:
-- same time, 77 MB more temp files for the sort). Not done for the other marts:
-- their sorts took a province build over issue 11's 500 MB of temp files
-- (benchmarks/README.md, 2026-12-06 17:45).
select * from final
order by uscc
