-- Rows of the projects sheet (重点项目) that belong to the version of their
-- area-month that counts (int_district_returns_versioned): a restatement
-- replaces the area-month entirely, rows of earlier versions drop out.

with

district_projects as (
    select * from {{ ref('stg_district__projects') }}
),

returns_versioned as (
    select * from {{ ref('int_district_returns_versioned') }}
),

final as (
    select district_projects.*
    from district_projects
    inner join returns_versioned
        on district_projects.ledger_id = returns_versioned.ledger_id
)

select * from final
