-- AFTER INSERT/UPDATE/DELETE ON assessments, once per statement (transition
-- tables new_assessments/old_assessments): when the set of a course's
-- published required assessments changes -- one is published, made required
-- or optional, or removed -- the completion of every enrollment of that course
-- on this shard is re-decided in one set-based statement. A catalog write runs
-- on every shard in one two-phase commit, so every region follows at once.
CREATE OR REPLACE FUNCTION elearn_assessment_completion_sync()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_courses uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT course_id) INTO v_courses
        FROM new_assessments WHERE status = 'published' AND required;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT course_id) INTO v_courses
        FROM old_assessments WHERE status = 'published' AND required;
    ELSE
        SELECT array_agg(DISTINCT c) INTO v_courses
        FROM (
            SELECT n.course_id, o.course_id
            FROM new_assessments n JOIN old_assessments o ON o.id = n.id
            WHERE (n.status = 'published' AND n.required)
                      IS DISTINCT FROM (o.status = 'published' AND o.required)
               OR n.course_id <> o.course_id
        ) changed(n_course, o_course), LATERAL unnest(ARRAY[n_course, o_course]) AS u(c);
    END IF;
    IF v_courses IS NOT NULL THEN
        PERFORM elearn_sync_completion(NULL, v_courses);
    END IF;
    RETURN NULL;
END;
$$;
