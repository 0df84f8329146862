with

corridor_areas as (
    select * from {{ ref('corridor_areas') }}
),

final as (
    select
        area_code,
        area_name,
        area_short_name,
        admin_division_code,
        admin_division_code is not null as has_admin_division_code,
        key_blocks
    from corridor_areas
)

select * from final
