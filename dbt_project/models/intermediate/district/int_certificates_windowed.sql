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

-- The rules are in macros/certificate_windows.sql, which fct_certifications
-- (where this model is stored and tested: it is ephemeral) also applies to
-- the certificates an incremental run recomputes.

with

certification_events as (
    select * from {{ ref('int_district_certifications_versioned') }}
),

{{ certificate_windows('certification_events') }},

final as (
    select * from windowed_certificates
)

select * from final
