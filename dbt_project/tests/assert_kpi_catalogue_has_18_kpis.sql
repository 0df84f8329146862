{{ config(tags=["reads_seeds_only"]) }}

-- The catalogue holds exactly K01 .. K18.

with

kpi_catalogue as (
    select * from {{ ref('kpi_catalogue') }}
),

expected as (
    select 'K' || lpad(n::text, 2, '0') as kpi_code
    from generate_series(1, 18) as n
),

final as (
    select coalesce(expected.kpi_code, kpi_catalogue.kpi_code) as kpi_code
    from expected
    full outer join kpi_catalogue
        on expected.kpi_code = kpi_catalogue.kpi_code
    where expected.kpi_code is null or kpi_catalogue.kpi_code is null
)

select * from final
