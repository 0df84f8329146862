-- One row per enterprise certificate (认定类别 + 证书编号 + 统一社会信用代码:
-- a number is unique only within its scheme and enterprise) with its
-- validity window: valid on d when valid_from ≤ d ≤ valid_to (valid_to
-- null = open-ended).

with

certificates as (
    select * from {{ ref('int_certificates_windowed') }}
),

final as (
    select
        certificate_key,
        certificate_no,
        uscc,
        enterprise_name,
        area_code,
        certification_type,
        granted_date,
        valid_until,
        revoked_date,
        is_revoked,
        valid_from,
        valid_to,
        valid_to is not null and valid_to < valid_from as is_never_valid,
        report_month,
        ledger_id,
        source_row
    from certificates
)

select * from final
