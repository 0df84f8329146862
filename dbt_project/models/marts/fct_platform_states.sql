-- Platform validity windows for BI: one row per state of a platform (area
-- + 平台编号), from the event that opens it, valid on d when
-- valid_from ≤ d ≤ valid_to (valid_to null = open). A state is in force
-- when the last 新增/撤销 up to it is a 新增; attributes are those in force
-- during the state. K01, K02, K07, K09, K13 and K14 are counted from these
-- rows (kpi_measures_platforms). Rules: int_platform_states_windowed.

with

platform_states as (
    select * from {{ ref('int_platform_states_windowed') }}
),

final as (
    select
        platform_state_id,
        platform_key,
        area_code,
        platform_id,
        platform_name,
        platform_category,
        platform_level,
        host_name,
        host_uscc,
        incubation_area_m2,
        recognised_date,
        opening_change_type,
        standing_change_type,
        standing_started_date,
        is_in_force,
        valid_from,
        valid_to,
        is_current,
        report_month,
        ledger_id,
        source_row
    from platform_states
)

select * from final
