-- Certificate validity. A certificate is identified as the source
-- identifies it: its number (证书编号) within its scheme (认定类别) and its
-- enterprise (统一社会信用代码). Numbers are issued per scheme and per
-- issuing office, so one number granted to two enterprises is two
-- certificates (a warning-level test lists such collisions,
-- assert_certificate_numbers_unique_per_scheme).
-- A certificate is valid on d when 认定日期 ≤ d ≤ 有效期至 (null =
-- open-ended) and it is not revoked by d. A 撤销 revokes the one certificate
-- it names within the same area and enterprise (same number and scheme),
-- from the last day of the report month of the workbook carrying it (the
-- earliest such day on or after the grant). If a certificate is reported as
-- 新增 more than once, the latest report counts. Intervals are inclusive:
-- [valid_from, valid_to].

with

certification_events as (
    select * from {{ ref('int_district_certifications_versioned') }}
),

grants as (
    select distinct on (certification_type, certificate_no, uscc) *
    from certification_events
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
    from certification_events
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

final as (
    select
        grants.certification_type || ':' || grants.certificate_no || ':' || grants.uscc as certificate_key,
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

select * from final
