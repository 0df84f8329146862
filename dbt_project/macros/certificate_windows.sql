{#- Certificate validity, the rules of int_certificates_windowed (one place; fct_certifications
    applies them to the events of the certificates an incremental run recomputes): CTEs grants,
    revocations, first_revocations and windowed_certificates (one row per certificate, the columns
    of int_certificates_windowed) over the certification events in the CTE named `events` (the
    columns of int_district_certifications_versioned). -#}
{% macro certificate_windows(events) %}
grants as (
    select distinct on (certification_type, certificate_no, uscc) *
    from {{ events }}
    where change_type = '新增' and granted_date is not null
    order by certification_type asc, certificate_no asc, uscc asc, report_month desc, ledger_id desc, source_row desc
),

revocations as (
    select
        area_code,
        uscc,
        certification_type,
        certificate_no,
        report_month_end_date as revoked_date
    from {{ events }}
    where change_type = '撤销'
),

first_revocations as (
    select
        grants.certification_type,
        grants.certificate_no,
        grants.uscc,
        min(revocations.revoked_date) as revoked_date
    from grants
    inner join revocations
        on
            grants.area_code = revocations.area_code
            and grants.uscc = revocations.uscc
            and grants.certification_type = revocations.certification_type
            and grants.certificate_no = revocations.certificate_no
            and grants.granted_date <= revocations.revoked_date
    group by grants.certification_type, grants.certificate_no, grants.uscc
),

windowed_certificates as (
    select
        {{ certificate_key('grants') }} as certificate_key,
        grants.certificate_no,
        grants.uscc,
        grants.enterprise_name,
        grants.area_code,
        grants.certification_type,
        grants.granted_date,
        grants.valid_until,
        first_revocations.revoked_date,
        first_revocations.revoked_date is not null as is_revoked,
        grants.granted_date as valid_from,
        -- least() ignores nulls: open-ended and never revoked stays null
        least(grants.valid_until, first_revocations.revoked_date - 1) as valid_to,
        grants.report_month,
        grants.ledger_id,
        grants.source_row
    from grants
    left join first_revocations
        on
            grants.certification_type = first_revocations.certification_type
            and grants.certificate_no = first_revocations.certificate_no
            and grants.uscc = first_revocations.uscc
)
{%- endmacro %}
