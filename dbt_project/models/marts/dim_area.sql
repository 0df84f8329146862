{{
    config(
        post_hook=["{{ create_area_roles() }}"],
    )
}}

-- One row per area; its post-hook creates the area's NOLOGIN role
-- area_<code> (row security, macros/bi_access.sql).

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
