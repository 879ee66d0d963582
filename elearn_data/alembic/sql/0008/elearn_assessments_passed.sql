-- Has the enrollment a passed attempt at every published required assessment
-- of its course? (True when the course has none.) Served by
-- ix_assessments_course_id and ix_assessment_attempts_passed.
CREATE OR REPLACE FUNCTION elearn_assessments_passed(p_enrollment_id uuid, p_course_id uuid)
RETURNS boolean
LANGUAGE sql
STABLE
AS $$
    SELECT NOT EXISTS (
        SELECT 1 FROM assessments a
        WHERE a.course_id = p_course_id AND a.status = 'published' AND a.required
          AND NOT EXISTS (
              SELECT 1 FROM assessment_attempts t
              WHERE t.enrollment_id = p_enrollment_id AND t.assessment_id = a.id AND t.passed
          )
    )
$$;
