-- One row per enterprise (统一社会信用代码) seen in any feed, in any role:
-- certified enterprise, platform host, contract seller or buyer, pledge
-- borrower, talent employer. Name = the latest name reported; area = the
-- latest corridor area reported (buyers carry no area; a buyer outside the
-- corridor has none). District rows count in their version that counts.

with

certifications as (
    select * from {{ ref('int_district_certifications_versioned') }}
),

platforms as (
    select * from {{ ref('int_district_platforms_versioned') }}
),

contracts as (
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
        'certified' as enterprise_role
    from certifications
    union all
    select
        host_uscc as uscc,
        host_name as enterprise_name,
        area_code,
        report_month_end_date as observed_date,
        'platform_host' as enterprise_role
    from platforms
    where host_uscc is not null
    union all
    select
        seller_uscc as uscc,
        seller_name as enterprise_name,
        seller_area_code as area_code,
        export_date as observed_date,
        'tech_seller' as enterprise_role
    from contracts
    union all
    select
        buyer_uscc as uscc,
        buyer_name as enterprise_name,
        null::text as area_code,
        export_date as observed_date,
        'tech_buyer' as enterprise_role
    from contracts
    where buyer_uscc is not null
    union all
    select
        borrower_uscc as uscc,
        borrower_name as enterprise_name,
        area_code,
        {{ month_end('report_month') }} as observed_date,
        'pledge_borrower' as enterprise_role
    from loans
    union all
    select
        employer_uscc as uscc,
        employer_name as enterprise_name,
        area_code,
        file_month_end_date as observed_date,
        'talent_employer' as enterprise_role
    from talents
    where employer_uscc is not null
),

latest_names as (
    select distinct on (uscc)
        uscc,
        enterprise_name
    from observations
    where enterprise_name is not null
    order by uscc asc, observed_date desc, enterprise_role asc
),

latest_areas as (
    select distinct on (uscc)
        uscc,
        area_code
    from observations
    where area_code is not null
    order by uscc asc, observed_date desc, enterprise_role asc
),

roles as (
    select
        uscc,
        min(observed_date) as first_seen_date,
        max(observed_date) as last_seen_date,
        bool_or(enterprise_role = 'certified') as has_certification,
        bool_or(enterprise_role = 'platform_host') as is_platform_host,
        bool_or(enterprise_role = 'tech_seller') as is_tech_seller,
        bool_or(enterprise_role = 'tech_buyer') as is_tech_buyer,
        bool_or(enterprise_role = 'pledge_borrower') as is_pledge_borrower,
        bool_or(enterprise_role = 'talent_employer') as is_talent_employer
    from observations
    group by uscc
),

final as (
    select
        roles.uscc,
        latest_names.enterprise_name,
        latest_areas.area_code,
        latest_areas.area_code is not null as is_in_corridor,
        roles.has_certification,
        roles.is_platform_host,
        roles.is_tech_seller,
        roles.is_tech_buyer,
        roles.is_pledge_borrower,
        roles.is_talent_employer,
        roles.first_seen_date,
        roles.last_seen_date
    from roles
    left join latest_names
        on roles.uscc = latest_names.uscc
    left join latest_areas
        on roles.uscc = latest_areas.uscc
)

select * from final
