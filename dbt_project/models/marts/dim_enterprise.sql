{{
    config(
        materialized='incremental',
        unique_key='uscc',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['max_ledger_id']}],
        pre_hook="{% if is_incremental() %}delete from {{ this }} where uscc in ("
            ~ "{{ enterprises_changed_since(this) }}){% endif %}",
    )
}}

-- Index on max_ledger_id: an incremental run reads its watermark,
-- max(max_ledger_id), from the index instead of scanning the table.

-- depends_on: {{ ref('stg_district__certifications') }}
-- depends_on: {{ ref('stg_district__platforms') }}
-- depends_on: {{ ref('stg_district__returns') }}
-- (the incremental branch reads the raw district rows to find the changed enterprises)

-- One row per enterprise (统一社会信用代码) seen in any feed, in any role:
-- certified enterprise, platform host, contract seller or buyer, pledge
-- borrower, talent employer. Name = the latest name reported; area = the
-- latest corridor area reported (buyers carry no area; a buyer outside the
-- corridor has none). District rows count in their version that counts.
--
-- Incremental (issue 11): a run recomputes, from all their observations,
-- only the enterprises that macros/enterprises_changed_since.sql lists
-- (named in a record loaded after the watermark, the highest max_ledger_id
-- in the table, or in any version of a district area-month that received a
-- workbook since), and replaces them (delete+insert on uscc). The pre-hook
-- first deletes that list, so an enterprise that a restatement leaves with
-- no observation at all disappears as in a full refresh. If the watermark
-- falls by that deletion, the run recomputes a few more enterprises: the
-- same rows. Ledger ids committed in order and raw rows never deleted (else
-- --full-refresh), as for the incremental facts.

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

observations as (
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
changed_enterprises as (
    {{ enterprises_changed_since(this) }}
),
{% endif %}

observations_in_scope as (
    select * from observations
    {%- if is_incremental() %}
        where observations.uscc in (select changed_enterprises.uscc from changed_enterprises)
    {%- endif %}
),

-- One hash aggregate over the observations, no sort (issue 11: it sorted
-- them three times): the latest name and area are the greatest
-- (observed date, role rank, value) arrays, compared in the C collation;
-- role_rank inverts the role's alphabetical order, so that on the same
-- date the first role alphabetically wins, as before (then the greatest
-- value, where the old sort left the choice open).
enterprises as (
    select
        uscc,
        max(array[to_char(observed_date, 'YYYY-MM-DD'), role_rank, enterprise_name] collate "C")
        filter (where enterprise_name is not null) as latest_name,
        max(array[to_char(observed_date, 'YYYY-MM-DD'), role_rank, area_code] collate "C")
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
    from observations_in_scope
    group by uscc
),

final as (
    select
        uscc,
        latest_name[3]::text as enterprise_name,
        latest_area[3]::text as area_code,
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
)

select * from final
