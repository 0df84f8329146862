-- Rows of the platforms sheet (创新平台) that belong to the version of their
-- area-month that counts (int_district_returns_versioned): a restatement
-- replaces the area-month entirely, rows of earlier versions drop out.

with

district_platforms as (
    select * from {{ ref('stg_district__platforms') }}
),

returns_versioned as (
    select * from {{ ref('int_district_returns_versioned') }}
),

final as (
    select district_platforms.*
    from district_platforms
    inner join returns_versioned
        on district_platforms.ledger_id = returns_versioned.ledger_id
)

select * from final
